"""The online probe: off by default (the step sees no labels), and when on a
detached classifier that learns without changing how the encoder trains."""
import jax
import numpy as np
import pytest

from ssljax import data
from ssljax import evaluators
from ssljax import features as features_lib
from ssljax import hosts
from ssljax import models
from ssljax import step as step_lib
from ssljax.errors import InputError
from ssljax.evaluators import online_probe


def test_off_by_default_and_refused_without_labels(tiny_config):
  assert models.create_model(tiny_config, num_classes=10).classifier is None
  tiny_config.model.online_probe = True
  assert models.create_model(tiny_config, num_classes=10).classifier
  with pytest.raises(InputError, match='online_probe=True needs the labels'):
    models.create_model(tiny_config, num_classes=0)


def _two_steps(config, images, labels):
  train_step = step_lib.build(config, hosts.data_mesh(),
                              data.describe(images, labels))
  state = train_step.initial_state()
  perm = jax.numpy.arange(len(images))
  given = None if train_step.model.classifier is None else labels
  metrics = None
  for _ in range(2):
    state, metrics = train_step.jitted(state, images, perm, given)
  return train_step, state, metrics


@pytest.mark.slow
def test_probe_learns_without_changing_the_encoders_training(tiny_config):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (32, 32, 32, 3), np.uint8)
  labels = rng.integers(0, 10, 32).astype(np.int32)
  _, off, off_metrics = _two_steps(tiny_config, images, labels)
  tiny_config.model.online_probe = True
  train_step, on, on_metrics = _two_steps(tiny_config, images, labels)

  classifier = on.params.pop('classifier')
  assert classifier['kernel'].shape == (32, 10)
  initial = train_step.initial_state().params['classifier']['kernel']
  assert not np.allclose(classifier['kernel'], initial)  # It learned.
  # The encoder, heads and method see the same step with or without it.
  jax.tree.map(np.testing.assert_array_equal, on.params, off.params)
  np.testing.assert_array_equal(on_metrics['loss'], off_metrics['loss'])
  assert 0 <= float(on_metrics['online_probe_accuracy']) <= 1
  assert float(on_metrics['online_probe_cross_entropy']) > 0
  assert 'online_probe_accuracy' not in off_metrics

  with pytest.raises(ValueError, match='exactly when'):
    train_step(on.replace(params={**on.params, 'classifier': classifier}),
               images, np.arange(32))

  # Its test accuracy, evaluated on the clean test features.
  on = on.replace(params={**on.params, 'classifier': classifier})
  features = features_lib.encoder(
      tiny_config, hosts.data_mesh(), data.describe(images, labels)).extract(
          on, images)
  result = online_probe.make(online_probe.default_config(), tiny_config).run(
      evaluators.Features(features, labels, features, labels, state=on))
  expected = np.mean(np.argmax(features @ np.asarray(classifier['kernel'])
                               + np.asarray(classifier['bias']), 1) == labels)
  assert result['test_accuracy'] == pytest.approx(expected)
  assert 'note' in online_probe.make(online_probe.default_config(),
                                     tiny_config).run(
      evaluators.Features(features, labels, features, labels, state=off))
