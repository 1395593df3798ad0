"""The VICReg-TiCo hybrid: VICReg's invariance and variance terms, with TiCo's
covariance contrast against a running covariance C in place of VICReg's
covariance term.

  B = z^T z / N (no gradient),  C <- beta C + (1 - beta) B
  loss = sim_coeff * s(Z, Z') + std_coeff * (v(Z) + v(Z')) / 2
         + nu * mean_i z_i C z_i^T

Options (`configs/vicreg_tico.py` says which defaults were chosen and where
the measurements are):
  normalize:     use L2-normalised z for B and the quadratic form, as TiCo
                 does; the invariance and variance terms always see raw z.
  both_branches: False uses z1 only, exactly as TiCo. True updates C with
                 the mean of both branches' B, (B1 + B2) / 2, and averages the
                 quadratic form over the two branches, like VICReg's
                 symmetric covariance term.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import ranges
from ssljax.methods import common
from ssljax.methods import tico
from ssljax.methods import vicreg


def default_config() -> ml_collections.ConfigDict:
  """VICReg's lambda = mu = 25; TiCo's beta = 0.9; nu = 0.01 on raw z1
  (experiments/results/hybrid_defaults.md)."""
  return ml_collections.ConfigDict(dict(
      name='vicreg_tico', sim_coeff=25.0, std_coeff=25.0, nu=0.01, beta=0.9,
      normalize=False, both_branches=False))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'*_coeff': ranges.AT_LEAST_0, 'nu': ranges.AT_LEAST_0,
          'beta': ranges.DECAY}

# What each setting of default_config() means (--show_config).
HELP = {
    'sim_coeff': "lambda, weight of VICReg's invariance term",
    'std_coeff': "mu, weight of VICReg's variance term",
    'nu': "weight of TiCo's covariance term mean_i(z1_i C z1_i^T)",
    'beta': 'decay of the running covariance C',
    'normalize': 'L2-normalise z1 before the covariance term (TiCo does)',
    'both_branches': 'apply the covariance term to z2 as well as z1',
}


def vicreg_tico_loss(z1: jax.Array, z2: jax.Array, c: jax.Array, *,
                     sim_coeff: float, std_coeff: float, nu: float,
                     beta: float, normalize: bool, both_branches: bool
                     ) -> tuple[jax.Array, dict[str, jax.Array], jax.Array]:
  """Returns the hybrid loss, its unweighted terms and the updated C."""
  branches = (z1, z2) if both_branches else (z1,)
  if normalize:
    branches = tuple(common.l2_normalize(z) for z in branches)
  c = tico.update_covariance(c, jnp.concatenate(branches), beta)
  terms = {
      'invariance': vicreg.invariance(z1, z2),
      'variance': (vicreg.variance(z1) + vicreg.variance(z2)) / 2,
      'covariance': sum(tico.covariance_contrast(z, c) for z in branches)
                    / len(branches),
  }
  loss = (sim_coeff * terms['invariance'] + std_coeff * terms['variance']
          + nu * terms['covariance'])
  return loss, terms, c


def make(config: ml_collections.ConfigDict) -> common.Method:
  cfg = config.method

  def loss(outputs, c):
    value, terms, c = vicreg_tico_loss(
        outputs['z1'], outputs['z2'], c, sim_coeff=cfg.sim_coeff,
        std_coeff=cfg.std_coeff, nu=cfg.nu, beta=cfg.beta,
        normalize=cfg.normalize, both_branches=cfg.both_branches)
    return value, terms, c

  dim = config.model.projector_widths[-1]
  return common.joint_embedding(
      config, loss, init_state=lambda params: tico.zero_covariance(dim),
      state_diagnostics=tico.covariance_summary)
