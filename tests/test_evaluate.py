"""`python -m ssljax.evaluate`: a saved checkpoint evaluated without
retraining, its JSON, pictures and TensorBoard summaries, and bad input."""
import json
import os
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest

from ssljax import evaluate
from ssljax.errors import InputError
from ssljax.workdir import events as events_lib


def _write_config(config, workdir):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))


def test_saved_config_loads_with_tuples_and_settings_added_since(
    tiny_config, tmp_path):
  saved = json.loads(tiny_config.to_json_best_effort())
  del saved['collapse']  # A run started before the collapse watch existed.
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(saved, f)
  config = evaluate.load_config(str(tmp_path))
  assert config.model.projector_widths == (32, 32, 32)
  assert config.augment.crop_scale == tuple(tiny_config.augment.crop_scale)
  assert config.method.name == 'vicreg'
  assert config.collapse.num_images == 256  # The default, filled in.
  assert config.train.batch_size == 16


def test_bad_workdirs_and_steps_are_refused_in_one_message(tiny_config,
                                                           tmp_path):
  with pytest.raises(InputError, match='is not the workdir of an ssljax'):
    evaluate.evaluate_checkpoint(str(tmp_path / 'none'))
  _write_config(tiny_config, tmp_path)
  with pytest.raises(InputError, match='holds no checkpoint to evaluate'):
    evaluate.evaluate_checkpoint(str(tmp_path))
  with ocp.CheckpointManager(tmp_path / 'checkpoints') as manager:
    manager.save(3, args=ocp.args.StandardSave({'a': np.zeros(2)}))
  with pytest.raises(InputError, match=r'no checkpoint of step 5; it holds '
                     r'steps \[3\]'):
    evaluate.evaluate_checkpoint(str(tmp_path), step=5)
  with pytest.raises(InputError, match="Unknown evaluators \\['probe'\\]"):
    evaluate.evaluate_checkpoint(str(tmp_path), chosen=['probe'])
  with pytest.raises(InputError, match='--evals names no evaluator'):
    evaluate.evaluate_checkpoint(str(tmp_path), chosen=[])
  for setting, message in (
      ('knn=3', 'must be EVALUATOR.KEY=VALUE'),
      ('feature_map.k=3', r"one of the evaluators run \(\['knn'\]\)"),
      ('knn.neighbours=3', "knn has no setting 'neighbours'; its settings: "
       r"\['chunk', 'every_epochs', 'k', 'temperature'\]"),
      ('knn.k=three', 'knn.k=three: ')):
    with pytest.raises(InputError, match=message):
      evaluate.evaluate_checkpoint(str(tmp_path), chosen=['knn'],
                                   settings=[setting])


def test_settings_change_the_evaluators_config(tiny_config):
  tiny_config.evals = {'knn': {'every_epochs': 0.0, 'k': 200,
                               'temperature': 0.1, 'chunk': 500}}
  chosen = ['knn', 'sgd_probe']
  evaluate.apply_settings(tiny_config, chosen, [
      'knn.k=20', 'sgd_probe.epochs=3', 'sgd_probe.crop_scale=(0.2, 1.0)'])
  assert tiny_config.evals.knn.k == 20
  assert tiny_config.evals.knn.temperature == 0.1  # The run's, kept.
  assert tiny_config.evals.sgd_probe.epochs == 3
  assert tiny_config.evals.sgd_probe.learning_rate == 0.1  # Its default.
  assert tiny_config.evals.sgd_probe.crop_scale == (0.2, 1.0)


def _steps(directory) -> dict:
  """{tag: [step]} of the scalars, histograms and images in `directory`
  (read as `events_lib` reads them: without TensorFlow)."""
  accumulator = events_lib.event_accumulator
  events = accumulator.EventAccumulator(str(directory), size_guidance={
      accumulator.SCALARS: 0, accumulator.HISTOGRAMS: 0,
      accumulator.IMAGES: 0})
  events.Reload()
  return {tag: [e.step for e in read(tag)] for kind, read in (
      ('scalars', events.Scalars), ('histograms', events.Histograms),
      ('images', events.Images)) for tag in events.Tags()[kind]}


@pytest.mark.slow
def test_checkpoint_of_a_finished_run_is_evaluated_with_json_and_pictures(
    trained_run, tmp_path):
  tmp_path = shutil.copytree(trained_run[1], tmp_path / 'run')
  # The earlier of the kept checkpoints, not the latest.
  record = evaluate.evaluate_checkpoint(str(tmp_path), step=4)
  # Evaluating again with one evaluator keeps the others' results.
  again = evaluate.evaluate_checkpoint(str(tmp_path), step=4,
                                       chosen=['knn'])
  # Other settings: kept beside the run's own, which they do not replace.
  other = evaluate.evaluate_checkpoint(str(tmp_path), step=4,
                                       chosen=['knn'], settings=['knn.k=1'])

  with open(tmp_path / 'eval' / '4.json') as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(other))
  assert {k: v for k, v in saved.items() if k != 'other_settings'} == (
      json.loads(json.dumps(again)))
  [k1] = saved['other_settings']['knn']
  assert k1['settings']['k'] == 1 and saved['evals']['knn']['settings'][
      'k'] == trained_run[0].evals.knn.k
  assert saved['linear_probe_accuracy'] == record['linear_probe_accuracy']
  assert saved['knn_accuracy'] == record['knn_accuracy']  # Deterministic.
  for key in ('linear_probe_accuracy', 'knn_accuracy', 'rankme', 'alignment',
              'uniformity', 'feature_dim', 'step'):
    assert isinstance(saved[key], (int, float)), key
  assert saved['step'] == 4 and saved['feature_dim'] == 32
  assert 1.0 <= saved['rankme'] <= 32
  diagnostics = saved['evals']['diagnostics']
  assert diagnostics['running_covariance_trace'] > 0  # TiCo's C summarised.
  assert len(diagnostics['running_covariance_eigenvalues']) == 32
  assert sorted(os.listdir(tmp_path / 'eval' / '4')) == [
      'confusion_matrix.png', 'feature_map.png', 'spectrum.png']
  logged = _steps(tmp_path / 'eval')
  # Both evaluations of step 4 wrote their kNN accuracy; the one with other
  # settings under a tag of its own (knn[k=1], as tensorboardX writes it).
  assert logged['knn/accuracy'] == [4, 4]
  assert logged['knn_k_1_/accuracy'] == [4]
  assert logged['diagnostics/spectrum'] == [4]

  # The training run itself logged the diagnostics at every log and its
  # final evaluation the same way.
  run_logged = _steps(tmp_path)
  for tag in ('collapse/feature_rankme', 'collapse/embedding_rankme',
              'collapse/alignment', 'collapse/uniformity',
              'collapse/running_covariance_effective_rank',
              'collapse/embedding_singular_values'):
    assert run_logged[tag] == [2, 4, 6], tag
  with open(tmp_path / 'eval' / '6.json') as f:
    assert set(json.load(f)) >= {'linear_probe_accuracy', 'knn_accuracy',
                                 'rankme'}
