"""What a run computes, pinned to `ssljax.NUMERICS_VERSION` (tests/golden.py):
a tiny deterministic training run, the train step jitted as training jits
it, its every metric and its final state; a refactor that changes these
without bumping the version fails here. Each method's inputs and loss are
pinned by the method contract (tests/test_method_contract.py)."""
import jax
import numpy as np
import pytest

import golden
from ssljax import data
from ssljax import hosts
from ssljax import step as step_lib

STEPS = 3


@pytest.mark.slow  # 12 s: the step with the online probe, compiled.
def test_a_tiny_run_computes_what_it_computed_at_this_numerics_version(
    tiny_config):
  """vicreg_tico (the method with state), with the online probe (the step's
  labelled path), from the data order to the optimizer's update."""
  from ssljax.methods import vicreg_tico  # pylint: disable=g-import-not-at-top
  tiny_config.method = vicreg_tico.default_config()
  tiny_config.model.online_probe = True
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (64, 32, 32, 3), np.uint8)
  labels = rng.integers(0, 10, 64).astype(np.int32)
  train_step = step_lib.build(
      tiny_config, hosts.data_mesh(jax.devices()[:1]),
      data.describe(images, labels))
  state = train_step.initial_state()
  on_devices = train_step.device_split(images), train_step.device_split(labels)
  trajectory = []
  for _ in range(STEPS):
    perm = train_step.epoch_order(state.rng,
                                  state.step // train_step.steps_per_epoch)
    state, metrics = train_step.jitted(state, on_devices[0], perm,
                                       on_devices[1])
    trajectory.append(metrics)
  golden.check('tiny_run/metrics', trajectory)
  golden.check('tiny_run/state', state)
