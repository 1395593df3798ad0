"""Evaluators as plug-ins: the features are extracted once per evaluation and
shared, every evaluator's result lands under its own name, and each module
of ssljax/evaluators/ builds from the default config."""
import fcntl
import functools
import importlib
import json
import threading
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssljax import defaults
from ssljax import evaluators
from ssljax import features as features_lib
from ssljax.errors import InputError
from ssljax.step import TrainState


class TwoNumbers(features_lib.Encoder):
  """A stand-in encoder: two numbers of each image, scaled by the state's
  'scale'; it records the batch sizes it is called with."""
  calls = []

  def host_features(self, variables, images, readout=None):
    assert readout is None  # The encoder's own features.
    self.calls.append(len(images))
    flat = jnp.asarray(images, jnp.float32).reshape(len(images), -1)
    return variables['params']['scale'] * flat[:, :2]

  def held_out_views(self, images):
    return images[:, ::-1]

  def measure(self, state, views):
    return {'scale': state.params['scale'], 'views': views}


def test_features_are_extracted_once_and_shared_by_every_evaluator():
  encoder = TwoNumbers(model=None, method=None, train_info=None, mesh=None,
                       seed=0, image_size=2, batch_size=4)
  state = TrainState(step=0, params={'scale': 2.0}, batch_stats={},
                     opt_state=(), method_state=(), rng=None)
  rng = np.random.default_rng(0)
  splits = {s: (rng.integers(0, 256, (n, 2, 2, 3), np.uint8),
                rng.integers(0, 10, n)) for s, n in (('train', 10),
                                                     ('test', 6))}
  seen = []
  def run(name, f):
    seen.append((name, f))
    if name == 'a':
      jax.jit(lambda x: x + 1)(jnp.ones(3))  # A program of its own.
    return {'n': len(f.train)}
  record = lambda name: evaluators.Evaluator(
      run=functools.partial(run, name), summary={f'{name}_n': 'n'})
  results = evaluators.evaluate(encoder, state, splits,
                                {'a': record('a'), 'b': record('b')})
  assert encoder.calls == [4, 4, 4, 4, 4]  # 10 + 6 images, padded to 4s.
  for name in ('a', 'b'):  # Each timed, where it does not time itself,
    assert results[name].pop('seconds') >= 0
  # and its compiling told apart: only a's run compiled.
  assert results['a'].pop('compile_seconds') > 0
  assert results['b'].pop('compile_seconds') == 0
  assert results['a'] == results['b'] == {'n': 10}
  assert results['features']['dim'] == 2
  assert evaluators.summary(results, {'a': record('a'), 'b': record('b')}) == {
      'feature_dim': 2, 'a_n': 10, 'b_n': 10}
  assert [name for name, _ in seen] == ['a', 'b']
  assert seen[0][1] is seen[1][1]  # One extraction, shared.
  features = seen[0][1]
  np.testing.assert_array_equal(
      features.train, 2.0 * splits['train'][0].reshape(10, -1)[:, :2])
  np.testing.assert_array_equal(features.test_labels, splits['test'][1])
  assert features.test_images is splits['test'][0] and features.state is state
  # The functions of images an evaluator gets are bound to the state.
  np.testing.assert_array_equal(features.encode(splits['test'][0]),
                                features.test)
  diagnosed = features.diagnose(splits['test'][0])
  assert diagnosed['scale'] == 2.0
  np.testing.assert_array_equal(diagnosed['views'],
                                splits['test'][0][:, ::-1])


def test_every_evaluator_module_builds_from_the_default_config():
  config = defaults.get_config('smoke')
  for name in evaluators.names():
    config.evals[name] = importlib.import_module(
        f'ssljax.evaluators.{name}').default_config()
  built = evaluators.make_all(config)
  assert set(built) == set(evaluators.names())
  assert all(isinstance(e, evaluators.Evaluator) for e in built.values())


def test_chosen_evaluators_take_the_configs_settings_else_their_defaults():
  config = defaults.get_config('smoke')
  config.evals = ml_collections.ConfigDict(
      {'knn': dict(every_epochs=0.0, k=3, temperature=0.1, chunk=10)})
  built = evaluators.make_all(config, ['knn', 'feature_map'])
  assert list(built) == ['knn', 'feature_map']
  rng = np.random.default_rng(0)
  x = rng.standard_normal((40, 4))
  labels = np.arange(40) % 2
  features = evaluators.Features(x, labels, x[:10], labels[:10])
  assert built['knn'].run(features)['k'] == 3  # The config's, not 200.
  with pytest.raises(InputError, match="Unknown evaluators \\['nearest'\\]"):
    evaluators.make_all(config, ['knn', 'nearest'])
  # Whoever makes them (a script, a benchmark), none runs out of range.
  config.evals.knn.k = 0
  with pytest.raises(InputError, match=r'Out of range: config\.evals\.knn\.k'
                     r'=0 \(must be >= 1\)'):
    evaluators.make_all(config, ['knn'])


def test_writers_of_one_steps_evaluation_take_turns_and_keep_both(tmp_path):
  writer = types.SimpleNamespace(write_images=lambda *a: None,
                                 write_scalars=lambda *a: None)
  evaluator = lambda name: {name: evaluators.Evaluator(
      run=None, summary={f'{name}_n': 'n'})}
  write = lambda name: evaluators.record(
      writer, str(tmp_path), 7, {'features': {'dim': 2}, name: {'n': 1}},
      evaluator(name))
  write('a')  # The training run's evaluation of step 7.
  (tmp_path / 'eval' / '.lock').touch()
  with open(tmp_path / 'eval' / '.lock') as held:  # Another writer's turn.
    fcntl.flock(held, fcntl.LOCK_EX)
    second = threading.Thread(target=write, args=('b',))
    second.start()
    second.join(timeout=1.0)
    assert second.is_alive()  # Waits for the lock, has not written.
    assert 'b' not in json.loads((tmp_path / 'eval' / '7.json').read_text())[
        'evals']
  second.join(timeout=30)
  saved = json.loads((tmp_path / 'eval' / '7.json').read_text())
  assert saved['a_n'] == saved['b_n'] == 1
  assert saved['evals']['a'] == saved['evals']['b'] == {'n': 1,
                                                        'settings': {}}


def test_a_result_with_other_settings_never_replaces_the_runs_own(tmp_path):
  """`ssljax.evaluate --set knn.k=1` beside the run's own kNN (k=3): both
  kept, each with its settings; the top level stays the run's."""
  writer = types.SimpleNamespace(write_images=lambda *a: None,
                                 write_scalars=lambda *a: None)
  knn = lambda k: {'knn': evaluators.Evaluator(
      run=None, summary={'knn_accuracy': 'accuracy'}, settings={'k': k})}
  write = lambda k, accuracy, changed: evaluators.record(
      writer, str(tmp_path), 7, {'features': {'dim': 2},
                                 'knn': {'accuracy': accuracy}},
      knn(k), changed)
  write(3, 0.5, {})  # The run's own evaluation.
  write(1, 0.9, {'knn': 'k=1'})
  write(1, 0.8, {'knn': 'k=1'})  # The same settings again: replaces it.
  write(2, 0.7, {'knn': 'k=2'})
  saved = json.loads((tmp_path / 'eval' / '7.json').read_text())
  assert saved['knn_accuracy'] == 0.5
  assert saved['evals']['knn'] == {'accuracy': 0.5, 'settings': {'k': 3}}
  assert saved['other_settings']['knn'] == [
      {'accuracy': 0.8, 'settings': {'k': 1}},
      {'accuracy': 0.7, 'settings': {'k': 2}}]
