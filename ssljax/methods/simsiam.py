"""SimSiam (Chen & He, CVPR 2021, Algorithm 1).

A predictor h on one branch, a stop-gradient on the other:
  D(p, z) = -cos(p, stopgrad(z))
  L = D(p1, z2) / 2 + D(p2, z1) / 2
The model's predictor (config.model.predictor_widths) supplies p1, p2.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.methods import common


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(name='simsiam'))


def simsiam_loss(p1, p2, z1, z2) -> tuple[jax.Array, dict[str, jax.Array]]:
  z1, z2 = jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2)
  loss = -(jnp.mean(common.cosine(p1, z2))
            + jnp.mean(common.cosine(p2, z1))) / 2
  return loss, {'negative_cosine': loss}


def make(config: ml_collections.ConfigDict) -> common.Method:
  def loss(outputs, state):
    p1, p2 = common.predictions(outputs, 'simsiam')
    value, terms = simsiam_loss(p1, p2, outputs['z1'], outputs['z2'])
    return value, terms, state

  return common.joint_embedding(config, loss)
