"""Barlow Twins (Zbontar et al., ICML 2021).

The embeddings of each view are standardised over the (global) batch, as the
reference code's affine-free BatchNorm does, and their cross-correlation C is
pushed to the identity (eq. 1 of the paper):
  C_ij = sum_b zn1_bi zn2_bj / N
  loss = scale * [ sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 ]
`scale` is the reference implementation's optional factor.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import ranges
from ssljax.methods import common


def default_config() -> ml_collections.ConfigDict:
  """lambda = 0.0051 (the paper's); scale 0.1, as solo-learn on CIFAR."""
  return ml_collections.ConfigDict(dict(name='barlow_twins', lambd=0.0051,
                                        scale=0.1))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'lambd': ranges.AT_LEAST_0, 'scale': ranges.AT_LEAST_0}

# What each setting of default_config() means (--show_config).
HELP = {
    'lambd': "weight of the cross-correlation's off-diagonal terms",
    'scale': 'factor on the whole loss (solo-learn scales it on CIFAR)',
}


def batch_standardize(z: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Zero mean, unit (biased) variance per dimension, as BatchNorm1d."""
  return (z - jnp.mean(z, axis=0)) / jnp.sqrt(jnp.var(z, axis=0) + eps)


def barlow_twins_loss(z1: jax.Array, z2: jax.Array, *, lambd: float,
                      scale: float) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Returns the Barlow Twins loss and its two unweighted terms."""
  c = batch_standardize(z1).T @ batch_standardize(z2) / z1.shape[0]
  terms = {
      'on_diagonal': jnp.sum((1.0 - jnp.diagonal(c)) ** 2),
      'off_diagonal': common.off_diagonal_sum_of_squares(c),
  }
  loss = scale * (terms['on_diagonal'] + lambd * terms['off_diagonal'])
  return loss, terms


def make(config: ml_collections.ConfigDict) -> common.Method:
  cfg = config.method

  def loss(outputs, state):
    value, terms = barlow_twins_loss(outputs['z1'], outputs['z2'],
                                     lambd=cfg.lambd, scale=cfg.scale)
    return value, terms, state

  return common.joint_embedding(config, loss)
