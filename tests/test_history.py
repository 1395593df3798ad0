"""A resume may change bookkeeping, not the computation (unless told), and
every start of a workdir is kept in its history."""
import json
import shutil

import ml_collections
import pytest

from ssljax import data
from ssljax import train
from ssljax.errors import InputError
from ssljax.workdir import history as history_lib


def _saved(config):
  return json.loads(config.to_json_best_effort())


def test_changes_lists_differing_keys_and_ignores_keys_added_since(
    tiny_config):
  saved = _saved(tiny_config)
  del saved['collapse']  # A section a newer ssljax added.
  tiny_config.optimizer.learning_rate = 0.6
  tiny_config.augment.crop_scale = (0.3, 1.0)
  tiny_config.train.log_every_steps = 7
  assert history_lib.changes(saved, tiny_config) == {
      'augment.crop_scale': [list(saved['augment']['crop_scale']), [0.3, 1.0]],
      'optimizer.learning_rate': [saved['optimizer']['learning_rate'], 0.6],
      'train.log_every_steps': [2, 7]}


@pytest.mark.parametrize('key, value', [
    ('optimizer.learning_rate', 0.6), ('seed', 1), ('train.batch_size', 32),
    ('method.std_coeff', 0.0), ('model.width', 0.125)])
def test_a_change_of_computation_is_refused_naming_key_and_flag(
    tiny_config, key, value):
  saved = _saved(tiny_config)
  section, _, name = key.rpartition('.')
  (tiny_config[section] if section else tiny_config)[name] = value
  found = history_lib.changes(saved, tiny_config)
  with pytest.raises(InputError, match=f'another config: {key} .* -> '
                     f'{value!r}.*--allow_config_change') as raised:
    history_lib.check_resume(found, 4, '/w', allowed=False)
  assert '\n' not in str(raised.value)
  history_lib.check_resume(found, 4, '/w', allowed=True)  # Told to.


@pytest.mark.parametrize('key, value', [
    ('train.log_every_steps', 5), ('train.checkpoint_every_steps', 5),
    ('train.keep_checkpoints', 9), ('train.num_epochs', 3.0),
    ('evals.knn.k', 20), ('collapse.num_images', 0),
    ('eval_batch_size', 64), ('data.data_dir', '/elsewhere')])
def test_bookkeeping_changes_are_allowed(tiny_config, key, value):
  saved = _saved(tiny_config)
  section, _, name = key.rpartition('.')
  node = tiny_config
  for part in section.split('.') if section else ():
    node = node[part]
  node[name] = value
  found = history_lib.changes(saved, tiny_config)
  assert list(found) == [key]
  history_lib.check_resume(found, 4, '/w', allowed=False)


def test_every_start_is_kept_and_config_json_is_the_latest(tmp_path):
  first = ml_collections.ConfigDict({'seed': 0, 'train': {'num_epochs': 1}})
  history = history_lib.start(str(tmp_path), first, None, {}, False)
  history_lib.finish(str(tmp_path), history, to_step=4, train_seconds=2.5,
                     outcome='Stopped: SIGTERM stopped the run')
  second = ml_collections.ConfigDict({'seed': 1, 'train': {'num_epochs': 2}})
  found = {'seed': [0, 1], 'train.num_epochs': [1, 2]}
  history = history_lib.start(str(tmp_path), second, 4, found, True)
  kept = history_lib.read(str(tmp_path))
  assert [h['from_step'] for h in kept] == [None, 4]
  assert kept[0]['config']['seed'] == 0 and kept[0]['train_seconds'] == 2.5
  assert kept[1]['config_changes'] == found and kept[1]['allowed_by_flag']
  assert 'ended' not in kept[1]  # Still running (or killed).
  assert json.loads((tmp_path / 'config.json').read_text())['seed'] == 1
  assert history_lib.summary(history)[1].keys() == kept[1].keys() - {'config'}


def test_a_workdir_from_before_the_history_keeps_its_config(tmp_path):
  (tmp_path / 'config.json').write_text('{"seed": 3}')
  history = history_lib.start(
      str(tmp_path), ml_collections.ConfigDict({'seed': 3}), 8, {}, False)
  assert history[0] == {'note': 'started before ssljax kept a history',
                        'config': {'seed': 3}}
  assert history[1]['from_step'] == 8


@pytest.mark.slow
def test_resume_refuses_a_changed_config_before_loading_and_keeps_history(
    trained_run, tmp_path, monkeypatch):
  trained, finished = trained_run
  workdir = shutil.copytree(finished, tmp_path / 'run')
  config = ml_collections.ConfigDict(trained.to_dict())
  config.evals = {}  # Bookkeeping, and quicker.
  config.collapse.num_images = 0
  before = (workdir / 'config.json').read_text()

  changed = ml_collections.ConfigDict(config.to_dict())
  changed.optimizer.learning_rate = 0.6
  rate = config.optimizer.learning_rate
  with monkeypatch.context() as patched:
    patched.setattr(data, 'load_arrays', None)  # Never reached.
    with pytest.raises(InputError, match=f'step 6 .* another config: '
                       f'optimizer.learning_rate {rate} -> 0.6. .*nothing '
                       'was changed'):
      train.train_and_evaluate(changed, str(workdir))
  assert (workdir / 'config.json').read_text() == before

  # Extending the run is bookkeeping; a re-run of a finished workdir adds
  # to the history and never loses the training time already spent.
  config.train.num_epochs = 2.0
  train.train_and_evaluate(config, str(workdir))
  results = train.train_and_evaluate(config, str(workdir))
  assert [h['from_step'] for h in results['history']] == [None, 6, 8]
  assert [h['to_step'] for h in results['history']] == [6, 8, 8]
  assert results['history'][1]['config_changes']['train.num_epochs'] == [
      1.5, 2.0]
  assert results['train_seconds_this_run'] == 0.0
  assert results['train_seconds'] > 0 and results['train_seconds'] == (
      pytest.approx(sum(h['train_seconds'] for h in results['history'])))
  saved = json.loads((workdir / 'results.json').read_text())
  assert saved['history'] == results['history']
  assert saved['steps'] == 8

  changed.train.num_epochs = 2.0
  train.train_and_evaluate(changed, str(workdir), allow_config_change=True)
  history = history_lib.read(str(workdir))
  assert history[-1]['allowed_by_flag'] and history[-1]['config_changes'][
      'optimizer.learning_rate'] == [rate, 0.6]
