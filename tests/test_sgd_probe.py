"""The SGD linear probe: it learns what is learnable and not what is not,
trains on fresh crops every epoch, reproducibly, follows PyTorch's SGD, and
refuses settings it cannot run with."""
import functools
import json
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import vicreg
from ssljax import data
from ssljax import evaluators
from ssljax import features as features_lib
from ssljax import hosts
from ssljax import models
from ssljax import validate
from ssljax.errors import InputError
from ssljax.evaluators import sgd_probe


def _gaussian_classes(n, d, separation, seed, num_classes=10):
  means = np.random.default_rng(0).normal(size=(num_classes, d)) * separation
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes, n)
  return (means[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def _probe(x, y, test_x, test_y):
  return sgd_probe.sgd_probe(
      lambda epoch: x, y, test_x, test_y, epochs=10, batch_size=64,
      learning_rate=0.1, momentum=0.9, weight_decay=0.0,
      key=jax.random.PRNGKey(0))


def test_separable_classes_are_learned_and_random_labels_are_not():
  x, y = _gaussian_classes(2000, 32, separation=1.5, seed=1)
  test_x, test_y = _gaussian_classes(1000, 32, separation=1.5, seed=2)
  result = _probe(x, y, test_x, test_y)
  assert result['test_accuracy'] > 0.97, result
  assert result['train_accuracy'] > 0.97, result
  rng = np.random.default_rng(3)
  result = _probe(x, rng.permutation(y), test_x, rng.permutation(test_y))
  assert result['test_accuracy'] < 0.16, result
  assert result['epochs'] == 10
  assert result['seconds_per_epoch'] == pytest.approx(result['seconds'] / 10)


def test_sgd_is_pytorch_momentum_on_a_cosine_schedule():
  # Constant gradient g: PyTorch's buffer is g, then 0.9 g + g, and each
  # step subtracts lr_t times it (Nesterov would subtract 1.9 g, then 2.71 g).
  optimizer = sgd_probe.sgd(0.1, 0.9, 0.0, total_steps=4)
  params = {'w': jnp.zeros(2)}
  state = optimizer.init(params)
  grads = {'w': jnp.ones(2)}
  lrs = [0.1 * 0.5 * (1 + np.cos(np.pi * t / 4)) for t in range(2)]
  steps = []
  for _ in range(2):
    updates, state = optimizer.update(grads, state, params)
    steps.append(float(updates['w'][0]))
  np.testing.assert_allclose(steps, [-lrs[0], -lrs[1] * 1.9], rtol=1e-6)


def _stand_in(num_train=16, num_test=8, size=8):
  """Features of random images under a stand-in encoder, the pixels
  average-pooled to 4 x 4 (so the features move with the crop), and the
  list of the batches it encoded."""
  encoded = []

  def encode(images):
    encoded.append(np.asarray(images))
    x = jnp.asarray(images, jnp.float32)
    pooled = x.reshape(len(x), 4, size // 4, 4, size // 4, 3).mean((2, 4))
    return np.asarray(pooled.reshape(len(x), -1))

  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (num_train, size, size, 3), np.uint8)
  test = rng.integers(0, 256, (num_test, size, size, 3), np.uint8)
  features = evaluators.Features(
      train=None, train_labels=rng.integers(0, 3, num_train),
      test=encode(test.astype(np.float32) / 255),
      test_labels=rng.integers(0, 3, num_test), train_images=train,
      test_images=test, encode=encode)
  encoded.clear()
  return features, encoded


def _run(features, seed=0, **settings):
  eval_config = sgd_probe.default_config()
  eval_config.update({'epochs': 2, 'batch_size': 8, **settings})
  config = ml_collections.ConfigDict({'seed': seed, 'eval_batch_size': 8})
  return sgd_probe.make(eval_config, config).run(features)


def test_every_epoch_trains_on_fresh_crops_reproducibly():
  features, encoded = _stand_in()
  result = _run(features)
  assert len(encoded) == 4  # 16 train images in batches of 8, 2 epochs.
  epoch0, epoch1 = np.concatenate(encoded[:2]), np.concatenate(encoded[2:])
  clean = features.train_images.astype(np.float32) / 255
  assert epoch0.dtype == np.float32 and epoch0.shape == clean.shape
  assert 0 <= epoch0.min() and epoch0.max() <= 1
  assert not np.allclose(epoch0, clean, atol=0.05)  # Cropped...
  assert not np.allclose(epoch0, epoch1, atol=0.05)  # ...afresh each epoch.
  json.dumps(result)
  assert set(result) >= {'test_accuracy', 'train_accuracy', 'epochs',
                         'seconds', 'seconds_per_epoch'}

  again, encoded_again = _stand_in()
  repeated = _run(again)
  for key in ('test_accuracy', 'train_accuracy', 'train_loss'):
    assert repeated[key] == result[key], key
  np.testing.assert_array_equal(np.concatenate(encoded_again), np.concatenate(
      encoded))
  other, encoded_other = _stand_in()
  _run(other, seed=1)
  assert not np.allclose(np.concatenate(encoded_other),
                         np.concatenate(encoded), atol=0.05)


def test_views_do_not_depend_on_the_batching():
  images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), np.uint8)
  view = lambda idx: sgd_probe.augmented_views(
      jax.random.PRNGKey(0), images[idx], idx, scale=(0.08, 1.0))
  np.testing.assert_array_equal(
      view(np.arange(6)),
      np.concatenate([view(np.arange(3)), view(np.arange(3, 6))]))


@pytest.mark.parametrize('key, value', [
    ('epochs', 0), ('batch_size', 0), ('learning_rate', 0.0),
    ('learning_rate', -0.1), ('momentum', 1.0), ('weight_decay', -1e-4),
])
def test_bad_settings_fail_naming_the_key(key, value):
  config = vicreg.get_config('smoke')
  config.evals.sgd_probe = sgd_probe.default_config()
  config.evals.sgd_probe[key] = value
  with pytest.raises(InputError, match=rf'config\.evals\.sgd_probe\.{key}='
                     rf'{value!r} \(must be'):
    validate.check(config)
  config.evals.sgd_probe = sgd_probe.default_config()
  config.evals.sgd_probe.crop_scale = (0.5, 0.2)
  with pytest.raises(InputError, match=r'crop_scale=\(0.5, 0.2\) .*low <= high'):
    sgd_probe.make(config.evals.sgd_probe, config)


def test_a_batch_larger_than_the_train_split_fails_naming_the_key():
  features, _ = _stand_in(num_train=16)
  with pytest.raises(InputError,
                     match=r'sgd_probe\.batch_size=32 .*16 images'):
    _run(features, batch_size=32)


def _random_encoder(encoder):
  """Random encoder variables of the config's model, as a state, drawn by
  NumPy from the model's shapes: compiling its init, or JAX's sampler for
  every shape, would cost ~10 s on 2 cores. BatchNorm's running statistics
  are all 1, a valid variance."""
  shapes = jax.eval_shape(
      functools.partial(encoder.model.init, method=models.SSLModel.features),
      jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
  rng = np.random.default_rng(1)
  params = jax.tree.map(
      lambda leaf: 0.3 * rng.normal(size=leaf.shape).astype(np.float32),
      shapes['params'])
  batch_stats = jax.tree.map(lambda leaf: np.ones(leaf.shape, np.float32),
                             shapes['batch_stats'])
  return types.SimpleNamespace(params=params, batch_stats=batch_stats)


def test_runs_on_the_real_encoder(tiny_config):
  rng = np.random.default_rng(0)
  train, test = (rng.integers(0, 256, (n, 32, 32, 3), np.uint8)
                 for n in (32, 16))
  encoder = features_lib.encoder(tiny_config, hosts.data_mesh(),
                                 data.describe(train))
  state = _random_encoder(encoder)
  encode = functools.partial(encoder.extract, state)
  # The test features from float images too: one compilation, not two.
  features = evaluators.Features(
      None, rng.integers(0, 10, 32), encode(test.astype(np.float32) / 255),
      rng.integers(0, 10, 16), train, test, state, encode=encode)
  result = _run(features, batch_size=16)
  assert 0 <= result['test_accuracy'] <= 1
  assert np.isfinite(result['train_loss'])
  evaluator = sgd_probe.make(sgd_probe.default_config(), tiny_config)
  assert evaluator.summary == {'sgd_probe_accuracy': 'test_accuracy'}
