"""Shared test fixtures: a tiny config that trains in seconds on CPU."""
import importlib
import os

import pytest

# Keep TensorFlow (pulled in by tfds/clu) quiet and off any accelerator.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def _shrink(config):
  """A smoke config shrunk to a 4-channel ResNet-18 and a few steps."""
  config.model.width = 0.0625
  config.train.batch_size = 16
  config.train.num_epochs = 1.5
  config.train.log_every_steps = 2
  config.train.checkpoint_every_steps = 2
  config.optimizer.warmup_epochs = 0.5
  config.eval_batch_size = 16
  config.evals.linear_probe.num_steps = 30
  config.evals.linear_probe.l2_grid = (1e-4, 1e-2)
  return config


@pytest.fixture
def tiny_config():
  """The VICReg config shrunk, with a 32-d projector."""
  from configs import vicreg  # pylint: disable=g-import-not-at-top
  config = _shrink(vicreg.get_config('smoke'))
  config.model.projector_widths = (32, 32, 32)
  return config


@pytest.fixture
def tiny_config_of():
  """tiny_config_of(name, preset='smoke'): configs/<name>.py:preset, shrunk
  (its own heads)."""
  return lambda name, preset='smoke': _shrink(
      importlib.import_module(f'configs.{name}').get_config(preset))


def _use_method(config, name: str):
  config.method = importlib.import_module(
      f'ssljax.methods.{name}').default_config()
  config.model.predictor_widths = (16, 32) if name in ('byol', 'simsiam') else ()
  return config


@pytest.fixture
def use_method():
  """use_method(config, name) switches a tiny config to another method with
  its default settings; the predictor methods get a small predictor that
  matches the 32-d projector."""
  return _use_method
