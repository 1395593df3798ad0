"""The online probe's test accuracy: the linear classifier that trained
alongside the encoder (`config.model.online_probe`), applied to the features
of the clean test images.

It learned on the features of augmented views, with BatchNorm on batch
statistics, and from an encoder that kept moving, so it is a monitor, not a
replacement for `linear_probe` (DeepMind's BYOL and solo-learn report it
the same way). A run without the probe gets a note and no accuracy.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax import evaluators


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(every_epochs=0.0))


def make(eval_config: ml_collections.ConfigDict,
         config: ml_collections.ConfigDict) -> evaluators.Evaluator:
  def run(features: evaluators.Features) -> dict:
    if 'classifier' not in features.state.params:
      return {'note': 'no online probe: the run was trained without '
                      '--config.model.online_probe=True'}
    layer = jax.device_get(features.state.params['classifier'])
    logits = jnp.asarray(features.test) @ layer['kernel'] + layer['bias']
    predictions = np.asarray(jnp.argmax(logits, axis=1))
    return {'test_accuracy': float(np.mean(predictions
                                           == features.test_labels))}
  return evaluators.Evaluator(run=run, summary={
      'online_probe_accuracy': 'test_accuracy'})
