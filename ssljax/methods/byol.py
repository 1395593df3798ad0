"""BYOL: Bootstrap Your Own Latent (Grill et al., NeurIPS 2020).

The online network (encoder, projector, predictor) predicts the projection of
the other view by a target network (encoder, projector) whose parameters are
an exponential moving average of the online ones:
  loss = [2 - 2 cos(p1, stopgrad(z2'))] + [2 - 2 cos(p2, stopgrad(z1'))]
         (batch means; eq. 2, symmetrised as in eq. 3)
  xi <- tau xi + (1 - tau) theta                                   (eq. 1)
  tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2
The target parameters and tau live in the train state's method_state, so they
are checkpointed, restored and sharded like the online parameters.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import ranges
from ssljax.methods import common

_TARGET_PARTS = ('encoder', 'projector')  # The target has no predictor.


def default_config() -> ml_collections.ConfigDict:
  """tau_base = 0.99, the paper's value for CIFAR (and solo-learn's)."""
  return ml_collections.ConfigDict(dict(name='byol', base_tau=0.99))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'base_tau': ranges.PROBABILITY}

# What each setting of default_config() means (--show_config).
HELP = {
    'base_tau': "the target network's EMA decay at the start; it rises to 1 "
                "by a cosine",
}


def target_part(params):
  return {k: v for k, v in params.items() if k in _TARGET_PARTS}


def tau_schedule(progress: jax.Array, base_tau: float) -> jax.Array:
  """Rises from base_tau at the start (progress 0) to 1 at the end (1)."""
  return 1.0 - (1.0 - base_tau) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def byol_loss(p1, p2, target_z1, target_z2
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
  target_z1 = jax.lax.stop_gradient(target_z1)
  target_z2 = jax.lax.stop_gradient(target_z2)
  loss = (jnp.mean(2.0 - 2.0 * common.cosine(p1, target_z2))
          + jnp.mean(2.0 - 2.0 * common.cosine(p2, target_z1)))
  return loss, {'regression': loss}


def make(config: ml_collections.ConfigDict) -> common.Method:
  base_tau = config.method.base_tau

  def init_state(params):
    # A copy: the train state is donated, and one buffer cannot be donated
    # twice.
    return {'target': jax.tree.map(jnp.copy, target_part(params)),
            'tau': jnp.float32(base_tau)}

  def targets(state, project, x):
    target_z1, target_z2 = jnp.split(
        project(state['target'], x).astype(jnp.float32), 2)
    return {'target_z1': target_z1, 'target_z2': target_z2}

  def loss(outputs, state):
    p1, p2 = common.predictions(outputs, 'byol')
    value, terms = byol_loss(p1, p2, outputs['target_z1'],
                             outputs['target_z2'])
    return value, {**terms, 'tau': state['tau']}, state

  def after_update(state, params, progress):
    tau = tau_schedule(progress, base_tau)
    target = jax.tree.map(lambda t, o: tau * t + (1.0 - tau) * o,
                          state['target'], target_part(params))
    return {'target': target, 'tau': tau}

  return common.joint_embedding(config, loss, init_state=init_state,
                                targets=targets, after_update=after_update)
