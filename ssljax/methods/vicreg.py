"""VICReg: Variance-Invariance-Covariance Regularization (Bardes et al. 2022).

Terms as in the reference implementation (facebookresearch/vicreg):
  invariance  s(Z, Z') = mean_{i,d} (z_id - z'_id)^2               (eq. 5)
  variance    v(Z) = mean_d relu(1 - sqrt(Var(z_d) + 1e-4))          (eq. 1)
  covariance  c(Z) = sum_{d != e} Cov(Z)_de^2 / D,
              Cov(Z) = (Z - mean)^T (Z - mean) / (N - 1)              (eq. 3-4)
  loss = sim_coeff * s + std_coeff * (v(Z) + v(Z')) / 2
         + cov_coeff * (c(Z) + c(Z'))                                 (eq. 6)
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import ranges
from ssljax.methods import common


def default_config() -> ml_collections.ConfigDict:
  """The paper's coefficients (sec. 4.1): lambda = mu = 25, nu = 1."""
  return ml_collections.ConfigDict(dict(
      name='vicreg', sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'*_coeff': ranges.AT_LEAST_0}

# What each setting of default_config() means (--show_config).
HELP = {
    'sim_coeff': 'lambda, weight of the invariance (mean squared distance) '
                 'term',
    'std_coeff': 'mu, weight of the variance (hinge on the std) term',
    'cov_coeff': 'nu, weight of the covariance (off-diagonal) term',
}


def invariance(z1: jax.Array, z2: jax.Array) -> jax.Array:
  return jnp.mean((z1 - z2) ** 2)


def variance(z: jax.Array, eps: float = 1e-4) -> jax.Array:
  """Hinge on the per-dimension std, keeping every dimension in use."""
  std = jnp.sqrt(jnp.var(z, axis=0, ddof=1) + eps)
  return jnp.mean(jax.nn.relu(1.0 - std))


def covariance(z: jax.Array) -> jax.Array:
  """Squared off-diagonal covariance over D: decorrelates the dimensions."""
  n, d = z.shape
  zc = z - jnp.mean(z, axis=0)
  return common.off_diagonal_sum_of_squares(zc.T @ zc / (n - 1)) / d


def vicreg_loss(z1: jax.Array, z2: jax.Array, *, sim_coeff: float,
                std_coeff: float, cov_coeff: float
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Returns the VICReg loss (eq. 6) and its three unweighted terms."""
  terms = {
      'invariance': invariance(z1, z2),
      'variance': (variance(z1) + variance(z2)) / 2,
      'covariance': covariance(z1) + covariance(z2),
  }
  loss = (sim_coeff * terms['invariance'] + std_coeff * terms['variance']
          + cov_coeff * terms['covariance'])
  return loss, terms


def make(config: ml_collections.ConfigDict) -> common.Method:
  cfg = config.method

  def loss(outputs, state):
    value, terms = vicreg_loss(outputs['z1'], outputs['z2'],
                               sim_coeff=cfg.sim_coeff,
                               std_coeff=cfg.std_coeff,
                               cov_coeff=cfg.cov_coeff)
    return value, terms, state

  return common.joint_embedding(config, loss)
