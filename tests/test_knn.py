"""The weighted kNN evaluator against a float64 NumPy reference written from
the InstDisc vote, on separable and random data, and its bad settings."""
import numpy as np
import pytest

from ssljax import evaluators
from ssljax.evaluators import knn


def _reference_predictions(train, train_labels, test, k, temperature):
  """Wu et al. 2018, sec. 3.4: cosine similarities, the k most similar train
  points vote for their class with weight exp(s / T)."""
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  test = test / np.linalg.norm(test, axis=1, keepdims=True)
  predictions = []
  for row in test.astype(np.float64) @ train.T.astype(np.float64):
    nearest = np.argsort(-row)[:k]
    votes = np.zeros(train_labels.max() + 1)
    for i in nearest:
      votes[train_labels[i]] += np.exp(row[i] / temperature)
    predictions.append(np.argmax(votes))
  return np.array(predictions)


def test_predictions_match_numpy_on_random_data():
  rng = np.random.default_rng(0)
  train, test = rng.standard_normal((300, 16)), rng.standard_normal((70, 16))
  train_labels = rng.integers(0, 5, 300)
  for k, temperature in ((1, 0.1), (7, 0.1), (50, 0.5)):
    expected = _reference_predictions(train, train_labels, test, k,
                                      temperature)
    normalize = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    got = knn.knn_predict(normalize(train).astype(np.float32), train_labels,
                          normalize(test).astype(np.float32), k=k,
                          temperature=temperature, num_classes=5)
    np.testing.assert_array_equal(np.asarray(got), expected)
    # The chunked, padded accuracy agrees with the reference's.
    test_labels = rng.integers(0, 5, 70)
    assert knn.knn_accuracy(train, train_labels, test, test_labels, k=k,
                            temperature=temperature, chunk=32) == (
                                pytest.approx(np.mean(expected == test_labels)))


def test_separable_classes_score_100_percent_and_random_labels_chance():
  rng = np.random.default_rng(1)
  centres = 5 * rng.standard_normal((4, 8))
  labels = rng.integers(0, 4, 600)
  x = centres[labels] + rng.standard_normal((600, 8))
  assert knn.knn_accuracy(x[:500], labels[:500], x[500:], labels[500:], k=20,
                          temperature=0.1, chunk=64) == 1.0
  shuffled = rng.permutation(labels)
  assert knn.knn_accuracy(x[:500], shuffled[:500], x[500:], shuffled[500:],
                          k=20, temperature=0.1, chunk=64) < 0.45


def test_the_result_records_the_k_that_voted():
  rng = np.random.default_rng(0)
  features = evaluators.Features(
      rng.normal(size=(30, 4)), rng.integers(0, 3, 30),
      rng.normal(size=(10, 4)), rng.integers(0, 3, 10))
  config = knn.default_config()
  for asked, voted in ((5, 5), (99_999_999_999, 30)):  # All 30 at most.
    config.k = asked
    result = knn.make(config, None).run(features)
    assert result['k'] == voted and 0.0 <= result['accuracy'] <= 1.0
