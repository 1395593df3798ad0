"""The linear probe: it learns what is learnable, not what is not, converges,
and picks its L2 strength on held-out data."""
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.evaluators import linear_probe


def _gaussian_classes(n, d, separation, seed, num_classes=10, means_seed=None):
  """Unit-variance Gaussian classes whose means are drawn from `means_seed`
  (default `seed`), so that train and test can share their classes."""
  means = np.random.default_rng(
      seed if means_seed is None else means_seed).normal(
          size=(num_classes, d)) * separation
  rng = np.random.default_rng(seed + 1000)
  labels = rng.integers(0, num_classes, n)
  return (means[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


_SETTINGS = dict(l2_grid=(1e-4, 1e-2), holdout_fraction=0.1, num_steps=100,
                 seed=0)


def test_separable_classes_are_learned_and_random_labels_are_not():
  x, y = _gaussian_classes(3000, 32, separation=1.5, seed=0)
  result = linear_probe.linear_probe(x[:2000], y[:2000], x[2000:], y[2000:],
                                     **_SETTINGS)
  assert result['test_accuracy'] > 0.95
  shuffled = np.random.default_rng(1).permutation(y)
  result = linear_probe.linear_probe(x[:2000], shuffled[:2000], x[2000:],
                                     shuffled[2000:], **_SETTINGS)
  assert result['test_accuracy'] < 0.16


def _gradient(params, x, y, l2):
  """Gradient of mean cross-entropy + l2 ||W||^2, in float64 from the
  formula: X^T (softmax - onehot) / n + 2 l2 W, and the column sums for b."""
  w, b = np.float64(params['w']), np.float64(params['b'])
  logits = x.astype(np.float64) @ w + b
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  residual = (probs - np.eye(w.shape[1])[y]) / len(y)
  return x.T @ residual + 2 * l2 * w, residual.sum(0)


def test_fit_reaches_the_optimum_of_the_regularised_objective():
  x, y = _gaussian_classes(500, 8, separation=0.5, seed=2)
  l2 = 1e-2
  params = linear_probe.fit(jnp.asarray(x), jnp.asarray(y), jnp.float32(l2),
                        num_classes=10, num_steps=200)
  grad_w, grad_b = _gradient(params, x, y, l2)
  assert np.abs(grad_w).max() < 1e-4 and np.abs(grad_b).max() < 1e-4
  assert np.abs(params['w']).max() > 1e-2  # Not trivially zero.


def test_fit_path_reaches_each_optimum_in_turn():
  x, y = _gaussian_classes(500, 8, separation=0.5, seed=5)
  grid = (1e-1, 1e-2, 1e-3)
  path = linear_probe.fit_path(jnp.asarray(x), jnp.asarray(y),
                           jnp.asarray(grid, jnp.float32), num_classes=10,
                           num_steps=100)
  norms = []
  for i, l2 in enumerate(grid):
    params = jax.tree.map(lambda p: p[i], path)  # pylint: disable=cell-var-from-loop
    grad_w, grad_b = _gradient(params, x, y, l2)
    assert np.abs(grad_w).max() < 1e-4 and np.abs(grad_b).max() < 1e-4, l2
    norms.append(np.linalg.norm(params['w']))
  assert norms[0] < norms[1] < norms[2]  # Weaker L2, larger weights.


def test_held_out_selection_prefers_strong_l2_when_overfitting():
  # Few samples, many noisy dimensions: weak L2 memorises the train part.
  x, y = _gaussian_classes(300, 200, separation=0.15, seed=3)
  test_x, test_y = _gaussian_classes(1000, 200, separation=0.15, seed=4,
                                     means_seed=3)
  grid = (1e-6, 1e-1)
  result = linear_probe.linear_probe(x, y, test_x, test_y, l2_grid=grid,
                                     holdout_fraction=0.3, num_steps=100,
                                     seed=0)
  assert result['best_l2'] == 1e-1, result
  accuracy = dict(zip(result['l2_grid'], result['holdout_accuracies']))
  assert accuracy[1e-1] > accuracy[1e-6]
  # The choice never reads the test labels: other test labels, the same
  # choice and held-out scores (only the test accuracy moves).
  relabelled = linear_probe.linear_probe(
      x, y, test_x, (test_y + 1) % 10, l2_grid=grid, holdout_fraction=0.3,
      num_steps=100, seed=0)
  for key in ('best_l2', 'holdout_accuracies', 'holdout_cross_entropies'):
    assert relabelled[key] == result[key], key
  assert relabelled['test_accuracy'] < result['test_accuracy'] - 0.2
