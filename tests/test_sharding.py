"""The train step and the collapse diagnostics give the same result on 8
devices as on 1.

JAX fixes the device count when it starts, so when this session has fewer than
8 devices the tests re-run themselves in a subprocess with 8 simulated CPU
devices.
"""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conftest

from ssljax import data
from ssljax import features
from ssljax import hosts
from ssljax import step as step_lib

NUM_DEVICES = 8


def _two_steps(config, devices, images):
  mesh, info = hosts.data_mesh(devices), data.describe(images)
  train_step = step_lib.build(config, mesh, info)
  state = train_step.initial_state()
  perm = jax.device_put(jnp.arange(len(images))[::-1], train_step.replicated)
  on_devices = train_step.device_split(images)
  # Each device holds its own rows of the split, none the whole.
  assert {s.data.shape[0] for s in on_devices.addressable_shards} == {
      len(images) // len(devices)}
  for _ in range(2):
    state, metrics = train_step.jitted(state, on_devices, perm)
  encoder = features.encoder(config, mesh, info)
  diagnostics = encoder.measure(state, encoder.held_out_views(images[:16]))
  return jax.device_get((state, metrics, diagnostics)), train_step


@pytest.fixture(scope='module')
def eight_device_report():
  """This file's tests run in one pytest subprocess with 8 simulated CPU
  devices (one each would start JAX and TensorFlow three times); the
  subprocess's report, which names each passed test (-rA)."""
  env = dict(os.environ, XLA_FLAGS=(
      f"{conftest.xla_flags_of_users(os.environ.get('XLA_FLAGS', ''))} "
      f'--xla_force_host_platform_device_count={NUM_DEVICES}'))
  proc = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-rA', '-m', '', '-n', '0',
       '-p', 'no:cacheprovider', __file__],
      env=env, capture_output=True, text=True, check=False)
  return proc.stdout + proc.stderr


# vicreg_tico: a BatchNorm over the global batch, a loss over all of its
# images (as SimCLR's negatives), and state carried from step to step (TiCo's
# C), every way a per-device computation would differ from the global one.
@pytest.mark.slow
@pytest.mark.parametrize('method_name', ['vicreg_tico'])
def test_sharded_step_equals_single_device(tiny_config_of, method_name,
                                           request):
  if jax.device_count() < NUM_DEVICES:
    report = request.getfixturevalue('eight_device_report')
    assert f'PASSED {request.node.nodeid}' in report, report[-10000:]
    return

  tiny_config = tiny_config_of(method_name)
  tiny_config.train.batch_size = 16  # Two images per device.
  # 16 base channels: the 4-channel test net is so ill-conditioned that
  # float32 summation order alone moves its BatchNorm gradients by 1e-3.
  tiny_config.model.width = 0.25
  tiny_config.augment.image_size = 16
  images = np.random.RandomState(0).randint(0, 256, (32, 32, 32, 3), np.uint8)
  (one_state, one_metrics, one_diagnostics), train_step = _two_steps(
      tiny_config, jax.devices()[:1], images)
  (many_state, many_metrics, many_diagnostics), _ = _two_steps(
      tiny_config, jax.devices()[:NUM_DEVICES], images)

  assert one_metrics.keys() == many_metrics.keys()
  # A per-device (not global) BatchNorm or loss would differ by percents.
  for key in one_metrics:
    np.testing.assert_allclose(one_metrics[key], many_metrics[key],
                               rtol=2e-5, atol=1e-6, err_msg=key)
  assert int(one_state.step) == int(many_state.step) == 2
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  jax.tree.map(close, one_state.params, many_state.params)
  jax.tree.map(close, one_state.batch_stats, many_state.batch_stats)
  jax.tree.map(close, one_state.method_state, many_state.method_state)
  # The step really moved the parameters (so equality is not trivial).
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(),
                       jax.device_get(train_step.initial_state().params),
                       one_state.params)
  assert max(jax.tree.leaves(moved)) > 1e-4
  # The collapse diagnostics, BatchNorm on the global held-out batch too.
  assert one_diagnostics.keys() == many_diagnostics.keys()
  for key in one_diagnostics:
    np.testing.assert_allclose(one_diagnostics[key], many_diagnostics[key],
                               rtol=1e-4, atol=1e-5, err_msg=key)
