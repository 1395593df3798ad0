"""End-to-end runs on conftest's mock arrays, resuming, evaluators, and bad
input."""
import glob
import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

import ssljax
from ssljax import step as step_lib
from ssljax import train
from ssljax.errors import InputError
from ssljax.workdir import checkpoints
from ssljax.workdir import events


def _final_params(workdir):
  manager = checkpoints.manager(os.path.join(workdir, 'checkpoints'))
  restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
      default=ocp.args.StandardRestore()))[checkpoints.STATE]
  return manager.latest_step(), restored['params'], restored['method_state']


def _logged_steps(workdir, tag):
  return [step for _, step, _ in events.scalar_events(str(workdir))[tag]]


@pytest.mark.slow
def test_a_run_writes_events_checkpoints_and_results(trained_run):
  config, workdir = trained_run
  with open(workdir / 'results.json') as f:
    saved = json.load(f)
  assert saved['steps'] == 6 and saved['method'] == 'vicreg_tico'
  probe = saved['evals']['linear_probe']
  assert 0.0 <= probe['test_accuracy'] <= 1.0
  assert saved['eval_summary']['linear_probe_accuracy'] == (
      probe['test_accuracy'])
  assert saved['evals']['features']['dim'] == 4 * 8  # Width 1/16 ResNet-18.
  assert saved['config'] == json.loads(config.to_json_best_effort())
  assert saved['provenance']['packages']['jax'] == jax.__version__
  assert saved['provenance']['numerics_version'] == ssljax.NUMERICS_VERSION
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4', '6']
  # Every metric of the step and every number of the evaluator, by name.
  assert _logged_steps(workdir, 'linear_probe/test_accuracy') == [2, 4, 6]
  assert _logged_steps(workdir, 'knn/accuracy') == [2, 4, 6]
  assert _logged_steps(workdir, 'diagnostics/feature_rankme') == [6]
  for tag in ('loss', 'invariance', 'variance', 'covariance', 'grad_norm',
              'normalized_embedding_std', 'learning_rate',
              'images_per_second'):
    assert _logged_steps(workdir, f'train/{tag}') == [2, 4, 6], tag
  assert saved['last_logged_train_metrics'].keys() >= {'loss', 'covariance'}


@pytest.mark.slow
def test_the_console_shows_progress_and_results_and_log_txt_everything(
    trained_run):
  _, workdir = trained_run
  console = (workdir / 'stdout.txt').read_text().splitlines()
  errors = (workdir / 'stderr.txt').read_text().splitlines()
  log = (workdir / 'log.txt').read_text().splitlines()
  assert console[0].startswith('ssljax: vicreg_tico, preset smoke, on 1 cpu')
  assert '6 steps (1.50 epochs of 64 images at batch 16)' in console[1]
  assert 'full log in ' + str(workdir / 'log.txt') in console[1]
  # Not a terminal: a progress line per log (every 2 steps).
  assert [line.split()[1] for line in console
          if line.startswith('step ')] == ['2/6', '4/6', '6/6']
  assert any(line.startswith('  linear_probe_accuracy') for line in console)
  assert console[-1].startswith('64 test images; total ')
  # No absl INFO line (JAX's, orbax's, the writer's) reaches the console:
  absl_info = lambda line: line[:1] == 'I' and line[1:5].isdigit()
  assert not [line for line in console + errors if absl_info(line)]
  assert len(console) <= 25, console
  # (The warnings on stderr are mock data's own.)
  assert all(line[:1] == 'W' for line in errors), errors
  # log.txt has them, JAX's start-up notice from before the workdir was
  # known included, and every console line.
  assert sum(map(absl_info, log)) > 20
  assert any('checkpoint_manager' in line for line in log)
  assert set(console) <= set(log)


@pytest.mark.slow
def test_a_damaged_checkpoint_is_set_aside_and_the_resume_ends_bit_identical(
    trained_run, tmp_path, capsys):
  """A run whose latest checkpoint was damaged (or that was killed after
  its step-4 checkpoint) resumes from step 4 and ends, every leaf and
  TiCo's C, as the run nothing interrupted."""
  config, finished = trained_run
  workdir = shutil.copytree(finished, tmp_path / 'run')
  ckpts = workdir / 'checkpoints'
  expected = checkpoints.read_record(checkpoints.manager(str(ckpts)), 6)
  # 64 bytes in the middle of the largest data file of the latest step.
  largest = max(glob.glob(str(ckpts / '6' / 'default' / '**' / '*'),
                          recursive=True), key=os.path.getsize)
  with open(largest, 'r+b') as f:
    f.seek(os.path.getsize(largest) // 2)
    f.write(b'\0' * 64)
  capsys.readouterr()
  config = ml_collections.ConfigDict(config.to_dict())
  config.evals = {}  # Bookkeeping: the resume is what is checked.
  train.train_and_evaluate(config, str(workdir))
  out = capsys.readouterr().out
  assert 'checkpoints/6 ' in out and 'resuming from step 4, the newest ' in out
  assert os.listdir(workdir / 'damaged_checkpoints') == ['6']  # Kept.
  again = checkpoints.read_record(checkpoints.manager(str(ckpts)), 6)
  assert again['checksums'] == expected['checksums']  # Bit-identical.
  _, params, covariance = _final_params(workdir)
  _, expected_params, expected_covariance = _final_params(finished)
  jax.tree.map(np.testing.assert_array_equal, params, expected_params)
  np.testing.assert_array_equal(covariance, expected_covariance)
  assert np.abs(np.asarray(covariance)).sum() > 0  # C really was carried.


def _state(method_state):
  return step_lib.TrainState(
      step=jnp.int32(3), params={'w': jnp.ones((2, 2))}, batch_stats={},
      opt_state=(), method_state=method_state, rng=jax.random.PRNGKey(0))


def test_periodic_evaluations_stop_half_a_period_before_the_final_one():
  every = {'linear_probe': 1364, 'knn': 0, 'diagnostics': 500}
  # jigsaw's cpu30: 3.5 epochs of 390 steps = 1365, a quarter rounds to 341.
  assert train.due_evaluations({'p': 341}, 1023, 1365) == ['p']
  assert train.due_evaluations({'p': 341}, 1364, 1365) == []  # Final's job.
  # byol's cpu30: 11 epochs of 781 steps = 8591; a quarter rounds up to
  # 2148, so a fourth period would end after the run: the third still runs.
  assert train.due_evaluations({'p': 2148}, 6444, 8591) == ['p']
  assert train.due_evaluations(every, 1364, 1365 + 1364) == ['linear_probe']
  assert train.due_evaluations(every, 1000, 2000) == ['diagnostics']
  assert train.due_evaluations(every, 1500, 2000) == ['diagnostics']
  assert train.due_evaluations(every, 1999, 2000) == []
  assert train.due_evaluations(every, 2000, 2000) == []


def test_a_checkpoint_of_another_state_layout_is_refused_and_kept(tmp_path):
  # The jigsaw's state before its permutation set became a constant.
  old = _state({'permutations': jnp.zeros((64, 9), jnp.int32),
                'min_hamming': jnp.int32(7)})
  manager = checkpoints.manager(str(tmp_path))
  manager.save(3, args=ocp.args.Composite(
      default=ocp.args.StandardSave(old)))  # Also: a record-less checkpoint.
  manager.wait_until_finished()
  message = ('only in the checkpoint: method_state.min_hamming, '
             'method_state.permutations.*permutation set')
  with pytest.raises(InputError, match=message):
    checkpoints.resume(checkpoints.manager(str(tmp_path)), _state(()))
  wider = _state({'permutations': jnp.zeros((64, 9), jnp.int32),
                  'min_hamming': jnp.int32(7)}).replace(
                      params={'w': jnp.ones((2, 3))})
  with pytest.raises(InputError, match=r'params.w \(2, 2\) vs \(2, 3\)'):
    checkpoints.resume(checkpoints.manager(str(tmp_path)), wider)
  assert os.listdir(tmp_path) == ['3']  # Nothing deleted.
  restored, record, step = checkpoints.resume(
      checkpoints.manager(str(tmp_path)), old)
  assert int(restored.step) == step == 3 and record is None


@pytest.mark.slow
def test_divergence_names_the_first_non_finite_term_and_logs_the_interval(
    tiny_config, tmp_path, mock_arrays):
  tiny_config.data.name = mock_arrays
  tiny_config.optimizer.learning_rate = 1e30  # Overflows within a step.
  tiny_config.train.log_every_steps = 3
  tiny_config.train.checkpoint_every_steps = 3
  with pytest.raises(train.TrainingDiverged) as raised:
    train.train_and_evaluate(tiny_config, str(tmp_path))
  message = str(raised.value)
  assert 'first non-finite at step ' in message, message
  first_step = int(message.split('first non-finite at step ')[1].split(':')[0])
  assert 1 <= first_step <= 3
  logged = _logged_steps(tmp_path, 'train/loss')
  assert logged and logged[-1] >= first_step  # The bad interval is logged.
  assert not os.path.exists(tmp_path / 'checkpoints' / str(logged[-1]))
