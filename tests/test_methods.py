"""BYOL inside the real train step: its target network follows its EMA and
receives no gradient."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax import data
from ssljax import hosts
from ssljax import step as step_lib
from ssljax.methods import byol

pytestmark = pytest.mark.slow


def _byol_pipeline(config):
  images = np.random.RandomState(0).randint(0, 256, (64, 32, 32, 3), np.uint8)
  train_step = step_lib.build(config, hosts.data_mesh(jax.devices()[:1]),
                              data.describe(images))
  return (train_step, train_step.initial_state(), jnp.asarray(images),
          jnp.arange(64))


def test_byol_target_is_the_ema_of_the_online_network(tiny_config_of):
  config = tiny_config_of('byol')
  config.method.base_tau = 0.9  # A tau far from 1 makes the check sharp.
  train_step, state, images, perm = _byol_pipeline(config)
  step = jax.jit(train_step)
  state = step(state, images, perm)[0]  # The target now lags.
  before = jax.device_get(state)
  after = jax.device_get(step(state, images, perm)[0])

  # Step 1 of the run's total.
  tau = 1 - 0.1 * (np.cos(np.pi * 1 / train_step.total_steps) + 1) / 2
  np.testing.assert_allclose(after.method_state['tau'], tau, rtol=1e-6)
  expected = jax.tree.map(lambda t, o: tau * t + (1 - tau) * o,
                          before.method_state['target'],
                          byol.target_part(after.params))
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5,
                                 atol=1e-7),
               after.method_state['target'], expected)
  assert 'predictor' not in after.method_state['target']
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(),
                       before.method_state['target'],
                       after.method_state['target'])
  assert max(jax.tree.leaves(moved)) > 1e-6


def test_byol_loss_has_no_gradient_through_the_target(tiny_config_of):
  train_step, state, images, perm = _byol_pipeline(tiny_config_of('byol'))
  # Targets differ from the online network, so the loss depends on both.
  target = jax.tree.map(lambda t: t * 1.1, state.method_state['target'])
  state = state.replace(method_state={**state.method_state, 'target': target})

  # The train step's objective, as the step builds it (inputs, then the
  # targets, then the loss); differentiating the whole step instead, its
  # own gradient and update included, took 94 s of the slow tier.
  def loss_from(params, target):
    s = state.replace(params=params,
                      method_state={**state.method_state, 'target': target})
    x, extras = train_step.inputs(s, images, perm)
    extras = {**extras, **train_step.targets(s, x)}
    return train_step.loss(params, s.batch_stats, s.method_state, x, extras)[0]

  online_grad, target_grad = jax.jit(jax.grad(loss_from, argnums=(0, 1)))(
      state.params, target)
  assert all(not np.any(g) for g in jax.tree.leaves(target_grad))
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(online_grad)) > 0
