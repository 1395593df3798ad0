"""TiCo: Transformation Invariance and Covariance Contrast (Zhu et al. 2022).

With z L2-normalised, a running covariance C of past embeddings serves as a
memory of negatives (eq. 5-7 of the paper, and its reference code):
  B = z1^T z1 / N              (no gradient through B)
  C <- beta C + (1 - beta) B   (C_0 = 0; the updated C is used)
  loss = 1 - mean_i <z1_i, z2_i> + rho * mean_i z1_i C z1_i^T
C is carried from step to step in the train state.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import collapse
from ssljax import ranges
from ssljax.methods import common


def default_config() -> ml_collections.ConfigDict:
  """beta = 0.9 and rho = 8, as in the study ssljax grew from."""
  return ml_collections.ConfigDict(dict(name='tico', beta=0.9, rho=8.0))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'beta': ranges.DECAY, 'rho': ranges.AT_LEAST_0}

# What each setting of default_config() means (--show_config).
HELP = {
    'beta': 'decay of the running covariance C of the embeddings',
    'rho': 'weight of the covariance term z C z^T against the invariance term',
}


def zero_covariance(dim: int) -> jax.Array:
  """C_0 = 0 for D-dimensional embeddings."""
  return jnp.zeros((dim, dim), jnp.float32)


def update_covariance(c: jax.Array, z: jax.Array, beta: float) -> jax.Array:
  """C <- beta C + (1 - beta) z^T z / N, with the batch term a constant."""
  batch_cov = jax.lax.stop_gradient(z.T @ z / z.shape[0])
  return beta * c + (1.0 - beta) * batch_cov


def covariance_contrast(z: jax.Array, c: jax.Array) -> jax.Array:
  """mean_i z_i C z_i^T: large when z aligns with directions already seen."""
  return jnp.mean(jnp.sum((z @ c) * z, axis=1))


def covariance_summary(c: jax.Array) -> dict[str, jax.Array]:
  """C's trace, top eigenvalues and effective rank: how much of the
  embedding space the memory of past batches already covers."""
  return collapse.matrix_summary(c, 'running_covariance')


def tico_loss(z1: jax.Array, z2: jax.Array, c: jax.Array, *, beta: float,
              rho: float) -> tuple[jax.Array, dict[str, jax.Array], jax.Array]:
  """Returns the TiCo loss, its unweighted terms and the updated C."""
  z1, z2 = common.l2_normalize(z1), common.l2_normalize(z2)
  c = update_covariance(c, z1, beta)
  terms = {
      'invariance': 1.0 - jnp.mean(jnp.sum(z1 * z2, axis=1)),
      'covariance': covariance_contrast(z1, c),
  }
  return terms['invariance'] + rho * terms['covariance'], terms, c


def make(config: ml_collections.ConfigDict) -> common.Method:
  cfg = config.method

  def loss(outputs, c):
    value, terms, c = tico_loss(outputs['z1'], outputs['z2'], c,
                                beta=cfg.beta, rho=cfg.rho)
    return value, terms, c

  dim = config.model.projector_widths[-1]
  return common.joint_embedding(
      config, loss, init_state=lambda params: zero_covariance(dim),
      state_diagnostics=covariance_summary)
