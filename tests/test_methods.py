"""The method zoo inside the real train step: every method trains end to end,
and BYOL's target network follows its EMA and receives no gradient."""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssljax import data
from ssljax import pipeline
from ssljax import train
from ssljax.methods import byol

pytestmark = pytest.mark.slow


@pytest.mark.parametrize('name', ['barlow_twins', 'simclr', 'byol', 'simsiam'])
def test_each_method_trains_end_to_end_on_mock_data(tiny_config, use_method,
                                                    name, tmp_path):
  use_method(tiny_config, name)
  with tfds.testing.mock_data(num_examples=64):
    train.train_and_evaluate(tiny_config, str(tmp_path))
  with open(tmp_path / 'results.json') as f:
    results = json.load(f)
  assert results['method'] == name and results['steps'] == 6
  assert 0.0 <= results['evals']['linear_probe']['test_accuracy'] <= 1.0


def _byol_pipeline(config):
  images = np.random.RandomState(0).randint(0, 256, (64, 32, 32, 3), np.uint8)
  pipe = pipeline.build(config, pipeline.data_mesh(jax.devices()[:1]),
                        data.describe(images))
  return pipe, pipe.initial_state(), jnp.asarray(images), jnp.arange(64)


def test_byol_target_is_the_ema_of_the_online_network(tiny_config,
                                                      use_method):
  use_method(tiny_config, 'byol')
  tiny_config.method.base_tau = 0.9  # A tau far from 1 makes the check sharp.
  pipe, state, images, perm = _byol_pipeline(tiny_config)
  step = jax.jit(pipe.train_step)
  state = step(state, images, perm)[0]  # The target now lags.
  before = jax.device_get(state)
  after = jax.device_get(step(state, images, perm)[0])

  # Step 1 of the run's total.
  tau = 1 - 0.1 * (np.cos(np.pi * 1 / pipe.total_steps) + 1) / 2
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


def test_byol_loss_has_no_gradient_through_the_target(tiny_config,
                                                      use_method):
  use_method(tiny_config, 'byol')
  pipe, state, images, perm = _byol_pipeline(tiny_config)
  # Targets differ from the online network, so the loss depends on both.
  target = jax.tree.map(lambda t: t * 1.1, state.method_state['target'])
  state = state.replace(method_state={**state.method_state, 'target': target})

  # The train step's objective, as the step builds it (inputs, then the
  # targets, then the loss); differentiating the whole step instead, its
  # own gradient and update included, took 94 s of the slow tier.
  def loss_from(params, target):
    s = state.replace(params=params,
                      method_state={**state.method_state, 'target': target})
    x, extras = pipe.inputs(s, images, perm)
    extras = {**extras, **pipe.targets(s, x)}
    return pipe.loss(params, s.batch_stats, s.method_state, x, extras)[0]

  online_grad, target_grad = jax.jit(jax.grad(loss_from, argnums=(0, 1)))(
      state.params, target)
  assert all(not np.any(g) for g in jax.tree.leaves(target_grad))
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(online_grad)) > 0
