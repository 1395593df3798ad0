"""End-to-end runs on `tfds.testing.mock_data`, resuming, evaluators, and bad
input."""
import glob
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing import event_accumulator

from ssljax import step as step_lib
from ssljax import train
from ssljax.errors import InputError
from ssljax.methods import vicreg_tico
from ssljax.workdir import checkpoints


def _run(config, workdir):
  with tfds.testing.mock_data(num_examples=64):
    return train.train_and_evaluate(config, str(workdir))


def _final_params(workdir):
  manager = checkpoints.manager(os.path.join(workdir, 'checkpoints'))
  restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
      default=ocp.args.StandardRestore()))[checkpoints.STATE]
  return manager.latest_step(), restored['params'], restored['method_state']


def _logged_steps(workdir, tag):
  events = event_accumulator.EventAccumulator(
      str(workdir), size_guidance={event_accumulator.TENSORS: 0})
  events.Reload()
  return [e.step for e in events.Tensors(tag)]


@pytest.mark.slow
def test_run_writes_events_checkpoints_results_and_resumes_exactly(
    tiny_config, tmp_path):
  tiny_config.method = vicreg_tico.default_config()  # The run with method state.
  tiny_config.evals.linear_probe.every_epochs = 0.5  # Every 2 of the 6 steps.
  tiny_config.evals.knn.every_epochs = 0.5
  full, interrupted = tmp_path / 'full', tmp_path / 'interrupted'
  results = _run(tiny_config, full)

  with open(full / 'results.json') as f:
    saved = json.load(f)
  assert saved['steps'] == 6 and saved['method'] == 'vicreg_tico'
  probe = saved['evals']['linear_probe']
  assert 0.0 <= probe['test_accuracy'] <= 1.0
  assert probe == results['evals']['linear_probe']
  assert saved['evals']['features']['dim'] == 4 * 8  # Width 1/16 ResNet-18.
  assert saved['config']['train']['batch_size'] == 16
  assert saved['provenance']['packages']['jax'] == jax.__version__
  assert sorted(os.listdir(full / 'checkpoints')) == ['2', '4', '6']
  # Every metric of the step and every number of the evaluator, by name.
  assert _logged_steps(full, 'linear_probe/test_accuracy') == [2, 4, 6]
  assert _logged_steps(full, 'knn/accuracy') == [2, 4, 6]
  assert _logged_steps(full, 'diagnostics/feature_rankme') == [6]
  for tag in ('loss', 'invariance', 'variance', 'covariance', 'grad_norm',
              'normalized_embedding_std', 'learning_rate'):
    assert _logged_steps(full, f'train/{tag}') == [2, 4, 6], tag

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


@pytest.mark.slow
def test_a_damaged_checkpoint_falls_back_to_the_intact_one_and_ends_the_same(
    tiny_config, tmp_path, capsys):
  tiny_config.train.num_epochs = 1.0  # Checkpoints at steps 2 and 4.
  tiny_config.evals = {}
  tiny_config.collapse.num_images = 0
  _run(tiny_config, tmp_path)
  ckpts = tmp_path / 'checkpoints'
  expected = checkpoints.read_record(checkpoints.manager(str(ckpts)), 4)
  # 64 bytes in the middle of the largest data file of the latest step.
  largest = max(glob.glob(str(ckpts / '4' / 'default' / '**' / '*'),
                          recursive=True), key=os.path.getsize)
  with open(largest, 'r+b') as f:
    f.seek(os.path.getsize(largest) // 2)
    f.write(b'\0' * 64)
  capsys.readouterr()
  _run(tiny_config, tmp_path)
  out = capsys.readouterr().out
  assert 'checkpoints/4 ' in out and 'resuming from step 2, the newest ' in out
  assert os.listdir(tmp_path / 'damaged_checkpoints') == ['4']  # Kept.
  again = checkpoints.read_record(checkpoints.manager(str(ckpts)), 4)
  assert again['checksums'] == expected['checksums']  # Bit-identical.


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
    tiny_config, tmp_path):
  tiny_config.optimizer.learning_rate = 1e30  # Overflows within a step.
  tiny_config.train.log_every_steps = 3
  tiny_config.train.checkpoint_every_steps = 3
  with pytest.raises(train.TrainingDiverged) as raised:
    _run(tiny_config, tmp_path)
  message = str(raised.value)
  assert 'first non-finite at step ' in message, message
  first_step = int(message.split('first non-finite at step ')[1].split(':')[0])
  assert 1 <= first_step <= 3
  logged = _logged_steps(tmp_path, 'train/loss')
  assert logged and logged[-1] >= first_step  # The bad interval is logged.
  assert not os.path.exists(tmp_path / 'checkpoints' / str(logged[-1]))
