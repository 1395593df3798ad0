"""End-to-end runs on `tfds.testing.mock_data`, resuming, and bad input."""
import glob
import json
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds

from ssljax import train
from ssljax.methods import vicreg_tico
from ssljax.errors import InputError


def _run(config, workdir):
  with tfds.testing.mock_data(num_examples=64):
    return train.train_and_evaluate(config, str(workdir))


def _final_params(workdir):
  manager = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  restored = manager.restore(manager.latest_step())
  return manager.latest_step(), restored['params'], restored['method_state']


def test_run_writes_events_checkpoints_results_and_resumes_exactly(
    tiny_config, tmp_path):
  tiny_config.method = vicreg_tico.default_config()  # The run with method state.
  full, interrupted = tmp_path / 'full', tmp_path / 'interrupted'
  results = _run(tiny_config, full)

  assert glob.glob(str(full / 'events.out.tfevents.*'))
  with open(full / 'results.json') as f:
    saved = json.load(f)
  assert saved['steps'] == 6 and saved['method'] == 'vicreg_tico'
  assert 0.0 <= saved['test_accuracy'] <= 1.0
  assert saved['config']['train']['batch_size'] == 16
  assert saved['test_accuracy'] == results['test_accuracy']
  assert sorted(os.listdir(full / 'checkpoints')) == ['2', '4', '6']

  # A run killed after its step-4 checkpoint, then started again.
  _run(tiny_config, interrupted)
  shutil.rmtree(interrupted / 'checkpoints' / '6')
  _run(tiny_config, interrupted)

  step_a, params_a, c_a = _final_params(full)
  step_b, params_b, c_b = _final_params(interrupted)
  assert step_a == step_b == 6
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)
  np.testing.assert_array_equal(c_a, c_b)
  assert np.abs(np.asarray(c_a)).sum() > 0  # C really was carried.


def test_damaged_checkpoint_stops_with_a_clear_message(tiny_config, tmp_path):
  tiny_config.train.num_epochs = 0.5  # 2 steps.
  _run(tiny_config, tmp_path)
  for path in glob.glob(str(tmp_path / 'checkpoints' / '2' / '**' / '*'),
                        recursive=True):
    if os.path.isfile(path):
      with open(path, 'wb') as f:
        f.write(b'garbage')
  with pytest.raises(InputError, match='could not be restored'):
    _run(tiny_config, tmp_path)
  assert os.path.isdir(tmp_path / 'checkpoints' / '2')  # Nothing deleted.


@pytest.mark.parametrize('key, value, allowed', [
    ('method.name', 'vicregg', 'vicreg_tico'),
    ('model.backbone', 'resnet19', 'resnet50'),
    ('optimizer.name', 'adam', 'adamw'),
])
def test_unknown_names_fail_naming_the_key_and_choices(tiny_config, key, value,
                                                       allowed):
  section, name = key.split('.')
  tiny_config[section][name] = value
  with pytest.raises(InputError, match=f'config.{key}.*{allowed}'):
    train.validate_config(tiny_config, num_devices=1)


def test_batch_not_divisible_by_devices_fails(tiny_config):
  tiny_config.train.batch_size = 12
  with pytest.raises(InputError, match=r'config.train.batch_size=12.*\(8\)'):
    train.validate_config(tiny_config, num_devices=8)
