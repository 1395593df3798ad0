"""SimSiam (Chen & He, CVPR 2021, Algorithm 1).

A predictor h on one branch, a stop-gradient on the other:
  D(p, z) = -cos(p, stopgrad(z))
  L = D(p1, z2) / 2 + D(p2, z1) / 2
The model's predictor (config.model.predictor_widths) supplies p1, p2.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import methods


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
  """Row-wise cosine similarity, [N]."""
  a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
  b = b / jnp.linalg.norm(b, axis=1, keepdims=True)
  return jnp.sum(a * b, axis=1)


def simsiam_loss(p1, p2, z1, z2) -> tuple[jax.Array, dict[str, jax.Array]]:
  z1, z2 = jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2)
  loss = -(jnp.mean(cosine(p1, z2)) + jnp.mean(cosine(p2, z1))) / 2
  return loss, {'negative_cosine': loss}


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(name='simsiam'))


def _loss(outputs, state, cfg):
  del cfg
  p1, p2 = methods.predictions(outputs, 'simsiam')
  loss, terms = simsiam_loss(p1, p2, outputs['z1'], outputs['z2'])
  return loss, terms, state


methods.register('simsiam', methods.Method(loss=_loss))
