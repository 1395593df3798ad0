"""Every numeric setting is range-checked before any compute, each bad value
named in one message."""
import glob
import importlib
import math
import os

import numpy as np
import pytest

from ssljax import data
from ssljax import defaults
from ssljax import evaluators
from ssljax import hosts
from ssljax import step as step_lib
from ssljax import train
from ssljax import validate
from ssljax.errors import InputError


def _every_config():
  for path in sorted(glob.glob('configs/*.py')):
    name = os.path.basename(path)[:-3]
    if name != '__init__':
      module = importlib.import_module(f'configs.{name}')
      # A file may take other names after the colon (configs/study.py).
      for preset in getattr(module, 'PRESETS', defaults.PRESETS):
        config = module.get_config(preset)
        for evaluator in evaluators.names():  # The opt-in ones too.
          config.evals[evaluator] = importlib.import_module(
              f'ssljax.evaluators.{evaluator}').default_config()
        yield f'{name}:{preset}', config


def test_show_config_gives_every_setting_a_meaning_and_its_range():
  for name, config in _every_config():
    lines = validate.described(config).splitlines()
    keys = [line.split(' = ')[0] for line in lines]
    assert keys == list(defaults.flat(config.to_dict())), name
    unexplained = [key for key, line in zip(keys, lines) if '  # ' not in line]
    assert not unexplained, f'{name}: no meaning (HELP) for {unexplained}'
    for key in validate.numeric_settings(config):
      assert lines[keys.index(key)].endswith(']'), (name, key)  # Its range.


def test_every_numeric_setting_of_every_config_has_a_rule_and_passes_it():
  for name, config in _every_config():
    settings = validate.numeric_settings(config)
    assert 'optimizer.learning_rate' in settings  # Really found the numbers.
    missing = [key for key, (_, found) in validate.ranged(config).items()
               if found is None]
    assert not missing, f'{name}: no range rule for {missing}'
    if not math.isnan(config.train.num_epochs):  # Else a budget preset
      validate.check(config)  # without a rate: refused (test_presets).


@pytest.mark.parametrize('config_name,key,value,allowed', [
    ('vicreg', 'train.keep_checkpoints', 0, 'must be >= 1'),
    ('vicreg', 'train.checkpoint_every_steps', 0, 'must be >= 1'),
    ('vicreg', 'train.log_every_steps', 0, 'must be >= 1'),
    ('vicreg', 'optimizer.learning_rate', -0.3, 'must be > 0'),
    ('vicreg', 'optimizer.learning_rate', 0.0, 'must be > 0'),
    ('vicreg', 'augment.crop_scale', (0.0, 1.0),
     'each value must be > 0 and <= 1'),
    ('vicreg', 'augment.flip_prob', (1.5, 0.5),
     'each value must be >= 0 and <= 1'),
    ('simclr', 'method.temperature', 0.0, 'must be > 0'),
    ('tico', 'method.beta', 1.0, 'must be >= 0 and < 1'),
    ('vicreg', 'model.width', 0.0, 'must be > 0'),
    ('vicreg', 'model.projector_widths', (0, 8), 'each value must be >= 1'),
    ('vicreg', 'evals.knn.k', 0, 'must be >= 1'),
])
def test_out_of_range_values_are_named_with_what_is_allowed(
    config_name, key, value, allowed):
  config = importlib.import_module(f'configs.{config_name}').get_config(
      'smoke')
  section, name = key.rsplit('.', 1)
  config[section][name] = value
  with pytest.raises(InputError) as raised:
    validate.check(config)
  message = str(raised.value)
  assert f'config.{key}={value!r} ({allowed})' in message
  assert '\n' not in message


def test_all_bad_values_in_one_message_before_anything_is_written(tmp_path):
  config = importlib.import_module('configs.vicreg').get_config('smoke')
  config.train.keep_checkpoints = 0
  config.optimizer.learning_rate = -1.0
  with pytest.raises(InputError, match=r'learning_rate=-1.0 .*; '
                     r'config.train.keep_checkpoints=0'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


@pytest.mark.parametrize('key, value, allowed', [
    ('method.name', 'vicregg', 'vicreg_tico'),
    ('model.backbone', 'resnet19', 'resnet50'),
    ('model.dtype', 'float8', 'bfloat16'),
    ('optimizer.name', 'adam', 'adamw'),
])
def test_unknown_names_are_refused_before_anything_is_written(
    tmp_path, key, value, allowed):
  config = importlib.import_module('configs.vicreg').get_config('smoke')
  section, name = key.split('.')
  config[section][name] = value
  config.data.data_dir = str(tmp_path / 'no_data')  # Never reached.
  with pytest.raises(InputError, match=f'config.{key}.*{allowed}'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


def test_a_batch_the_devices_cannot_share_is_named(tiny_config):
  tiny_config.train.batch_size = 12
  with pytest.raises(InputError, match=r'config.train.batch_size=12.*\(8\)'):
    validate.batch_sizes(tiny_config, num_devices=8)
  tiny_config.train.batch_size = 16
  tiny_config.eval_batch_size = 20
  with pytest.raises(InputError, match=r'config.eval_batch_size=20.*\(8\)'):
    validate.batch_sizes(tiny_config, num_devices=8)


def test_a_training_length_under_one_step_is_refused(tiny_config):
  info = data.SplitInfo(64, np.full(3, 0.5, np.float32),
                        np.full(3, 0.25, np.float32))  # 4 steps of 16.
  tiny_config.train.num_epochs = 0.2
  with pytest.raises(InputError, match=r'num_epochs=0.2 is less than one '
                     r'step \(4 steps make an epoch\); train at least 0.25'):
    step_lib.build(tiny_config, hosts.data_mesh(), info)
  tiny_config.train.num_epochs = 0.0  # The initial encoder, evaluated.
  assert step_lib.build(tiny_config, hosts.data_mesh(), info).total_steps == 0
