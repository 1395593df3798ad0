"""Weighted k-nearest-neighbour classification of the test split against
the whole train split: every SSL library's training monitor.

The InstDisc convention (Wu et al. 2018, sec. 3.4), as solo-learn uses it:
features L2-normalised, similarity s_i = cos(test, train_i), the k most
similar train images vote for their class with weight exp(s_i / T), and the
class with the largest total wins. No parameters are fitted, so it is cheap
enough to run while training (`every_epochs`), and it judges the geometry of
the features rather than their linear separability.
"""
import functools
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax import collapse
from ssljax import evaluators
from ssljax import ranges


def default_config() -> ml_collections.ConfigDict:
  """k = 200 and T = 0.1 (InstDisc; solo-learn's defaults); chunk: test
  images scored per call, which bounds the [chunk, N_train] similarity
  matrix in memory (500 x 50,000 floats: 100 MB)."""
  return ml_collections.ConfigDict(dict(
      every_epochs=0.0, k=200, temperature=0.1, chunk=500))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'k': ranges.AT_LEAST_1, 'temperature': ranges.POSITIVE,
          'chunk': ranges.AT_LEAST_1}

# What each setting of default_config() means (--show_config).
HELP = {
    'k': 'neighbours that vote',
    'temperature': 'T of the exp(similarity / T) vote weights',
    'chunk': 'test images scored per call (bounds the similarity matrix in '
             'memory)',
}


@functools.partial(jax.jit, static_argnames=('k', 'num_classes'))
def knn_predict(train: jax.Array, train_labels: jax.Array, test: jax.Array,
                *, k: int, temperature: float, num_classes: int
                ) -> jax.Array:
  """The predicted class of each row of `test` [C, F] by a vote of its `k`
  nearest rows of `train` [N, F] (cosine), weighted by exp(similarity / T).
  Both are expected L2-normalised."""
  similarity, neighbours = jax.lax.top_k(test @ train.T, k)  # [C, k].
  votes = jax.nn.one_hot(train_labels[neighbours], num_classes)
  weights = jnp.exp(similarity / temperature)
  return jnp.argmax(jnp.einsum('ck,ckl->cl', weights, votes), axis=1)


def knn_accuracy(train: np.ndarray, train_labels: np.ndarray,
                 test: np.ndarray, test_labels: np.ndarray, *, k: int,
                 temperature: float, chunk: int) -> float:
  """Top-1 accuracy of `knn_predict` over the whole test set, scored
  `chunk` rows at a time (the last chunk padded so that it compiles once)."""
  train, test = (collapse.l2_normalize(jnp.asarray(x, jnp.float32),
                                       collapse.ZERO_SAFE)
                 for x in (train, test))
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  train_labels = jnp.asarray(train_labels)
  k = min(k, len(train))
  chunk = min(chunk, len(test))
  predictions = []
  for start in range(0, len(test), chunk):
    rows = test[start:start + chunk]
    padded = jnp.pad(rows, ((0, chunk - len(rows)), (0, 0)))
    predictions.append(np.asarray(knn_predict(
        train, train_labels, padded, k=k, temperature=temperature,
        num_classes=num_classes))[:len(rows)])
  return float(np.mean(np.concatenate(predictions) == test_labels))


def make(eval_config: ml_collections.ConfigDict,
         config: ml_collections.ConfigDict) -> evaluators.Evaluator:
  def run(features: evaluators.Features) -> dict:
    start = time.time()
    accuracy = knn_accuracy(
        features.train, features.train_labels, features.test,
        features.test_labels, k=eval_config.k,
        temperature=eval_config.temperature, chunk=eval_config.chunk)
    # The k that voted: a k above the train split's size votes with all.
    return {'accuracy': accuracy, 'k': min(eval_config.k,
                                           len(features.train)),
            'temperature': eval_config.temperature,
            'seconds': time.time() - start}
  return evaluators.Evaluator(run=run, summary={'knn_accuracy': 'accuracy'})
