"""Barlow Twins (Zbontar et al., ICML 2021).

The embeddings of each view are standardised over the (global) batch, as the
reference code's affine-free BatchNorm does, and their cross-correlation C is
pushed to the identity (eq. 1 of the paper):
  C_ij = sum_b zn1_bi zn2_bj / N
  loss = scale * [ sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 ]
lambda = 0.0051 (the paper's); `scale` is the optional factor of the
reference implementation (solo-learn uses 0.1 on CIFAR).
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import methods


def standardize(z: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Zero mean, unit (biased) variance per dimension, as BatchNorm1d."""
  return (z - jnp.mean(z, axis=0)) / jnp.sqrt(jnp.var(z, axis=0) + eps)


def barlow_twins_loss(z1: jax.Array, z2: jax.Array, *, lambd: float = 0.0051,
                      scale: float = 1.0
                      ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Returns the Barlow Twins loss and its two unweighted terms."""
  z1, z2 = z1.astype(jnp.float32), z2.astype(jnp.float32)
  c = standardize(z1).T @ standardize(z2) / z1.shape[0]
  on_diagonal = jnp.sum((1.0 - jnp.diagonal(c)) ** 2)
  terms = {
      'on_diagonal': on_diagonal,
      'off_diagonal': jnp.sum(c ** 2) - jnp.sum(jnp.diagonal(c) ** 2),
  }
  loss = scale * (terms['on_diagonal'] + lambd * terms['off_diagonal'])
  return loss, terms


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(name='barlow_twins', lambd=0.0051,
                                        scale=0.1))


def _loss(outputs, state, cfg):
  loss, terms = barlow_twins_loss(outputs['z1'], outputs['z2'],
                                  lambd=cfg.lambd, scale=cfg.scale)
  return loss, terms, state


methods.register('barlow_twins', methods.Method(loss=_loss))
