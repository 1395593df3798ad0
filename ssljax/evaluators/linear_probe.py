"""The linear probe: a jitted multinomial logistic regression on the frozen
encoder's features, the protocol every SSL paper reports.

The L2 strength is chosen by cross-entropy on a held-out part of the train
split (one warm-started pass over the grid, strong to weak), the probe is
refit on the full train split with it, and top-1 accuracy is measured on the
full test split. The objective is smooth and convex, so full-batch L-BFGS
converges, and from a warm start and preconditioned in a few dozen steps.
Its speed and accuracy against scikit-learn are measured in
experiments/results/performance.md.
"""
import functools
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssljax import data
from ssljax import evaluators
from ssljax import pictures
from ssljax import ranges


@jax.custom_vjp
def _logits(x, x_t, w):
  """x @ w. Its gradient in w reads the stored transpose x_t = x.T: XLA:CPU
  otherwise transposes the whole feature matrix for every gradient
  (`experiments/probe_internals.py` measures the difference)."""
  return x @ w


def _logits_fwd(x, x_t, w):
  return x @ w, x_t


def _logits_bwd(x_t, grad):
  return None, None, x_t @ grad  # The features are constants.


_logits.defvjp(_logits_fwd, _logits_bwd)


def predict(params, x):
  """The probe's logits."""
  return x @ params['w'] + params['b']


def cross_entropy(logits, labels):
  log_probs = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))


def accuracy(logits, labels):
  return jnp.mean(jnp.argmax(logits, axis=1) == labels)


def objective(params, x, x_t, labels, l2):
  """Mean cross-entropy + l2 * ||W||^2 (the bias is not regularised)."""
  logits = _logits(x, x_t, params['w']) + params['b']
  return cross_entropy(logits, labels) + l2 * jnp.sum(params['w'] ** 2)


def lbfgs(params, x, x_t, labels, l2, scale, num_steps):
  """`num_steps` steps of full-batch L-BFGS on `objective` from `params`, in
  the variables w' = w / scale (per feature): a diagonal preconditioner."""
  def loss(scaled):
    return objective({'w': scale[:, None] * scaled['w'], 'b': scaled['b']},
                     x, x_t, labels, l2)

  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad,
                                   value_fn=loss)
    return (optax.apply_updates(params, updates), state), None

  scaled = {'w': params['w'] / scale[:, None], 'b': params['b']}
  (scaled, _), _ = jax.lax.scan(step, (scaled, solver.init(scaled)), None,
                                length=num_steps)
  return {'w': scale[:, None] * scaled['w'], 'b': scaled['b']}


@functools.partial(jax.jit, static_argnames=('num_classes', 'num_steps'))
def fit_path(x, labels, l2_values, *, num_classes: int, num_steps: int,
             init=None):
  """Minimises `objective` for each of `l2_values` in turn, each fit starting
  from the previous one's solution (the first from `init`, default zero).

  Ordered from strong to weak L2, this is a warm-started regularisation path.
  The values run one after another on purpose: vmapped over the grid, L-BFGS
  runs every value to the slowest one's line-search iteration count.

  Standardised features are strongly correlated (the eigenvalues of X^T X / n
  span several decades), which makes plain L-BFGS need hundreds of steps.
  So each problem is solved in the eigenbasis V of X^T X / n, where ||W||^2 is unchanged, and in the variables that make its
  Hessian at the start the identity: the cross-entropy's Hessian at uniform
  predictions is (I - 11^T / K) / K (x) X^T X / n, so direction j is scaled by
  1 / sqrt(lambda_j / K + 2 l2). There a few dozen steps reach the optimum.
  """
  eigenvalues, basis = jnp.linalg.eigh(x.T @ x / x.shape[0])
  curvature = jnp.maximum(eigenvalues, 0) / num_classes
  x_rot = x @ basis
  x_rot_t = x_rot.T
  if init is None:
    init = {'w': jnp.zeros((x.shape[1], num_classes), x.dtype),
            'b': jnp.zeros((num_classes,), x.dtype)}

  def solve(params, l2):
    params = lbfgs(params, x_rot, x_rot_t, labels, l2,
                    jax.lax.rsqrt(curvature + 2 * l2), num_steps)
    return params, params

  init = {'w': basis.T @ init['w'], 'b': init['b']}
  _, path = jax.lax.scan(solve, init, l2_values)
  return {'w': basis @ path['w'], 'b': path['b']}


def fit(x, labels, l2, *, num_classes: int, num_steps: int, init=None):
  """Minimises `objective` at one L2 strength (see `fit_path`)."""
  path = fit_path(x, labels, jnp.reshape(l2, (1,)), num_classes=num_classes,
                  num_steps=num_steps, init=init)
  return jax.tree.map(lambda p: p[0], path)


def standardize_features(fit_x, *others):
  """Features scaled by the mean and std of `fit_x`, the ones fitted on."""
  mean, std = fit_x.mean(0), fit_x.std(0) + 1e-6
  return [(x - mean) / std for x in (fit_x,) + others]


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray,
                 test_features: np.ndarray, test_labels: np.ndarray, *,
                 l2_grid: Sequence[float], holdout_fraction: float,
                 num_steps: int, seed: int) -> dict:
  """Returns test/train accuracy, the test confusion matrix (rows: true
  class, columns: predicted), the chosen L2 and the held-out accuracies and
  cross-entropies."""
  start = time.time()
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  order = np.random.default_rng(seed).permutation(len(train_features))
  num_holdout = max(1, int(holdout_fraction * len(order)))
  held, kept = order[:num_holdout], order[num_holdout:]
  fit_x, held_x = standardize_features(train_features[kept], train_features[held])
  # Strongest L2 first: the path's warm starts then go from the easy,
  # well-conditioned problems to the hard ones.
  ordered = sorted(l2_grid, reverse=True)
  grid = jnp.asarray(ordered, jnp.float32)
  path = fit_path(fit_x, train_labels[kept], grid, num_classes=num_classes,
                  num_steps=num_steps)
  # Chosen by held-out cross-entropy, not accuracy: accuracy moves in steps
  # of single images and can be flat over decades of L2, which makes the
  # choice a coin toss; the cross-entropy is smooth in L2 (experiments/
  # results/performance.md).
  held_x, held_labels = jnp.asarray(held_x), train_labels[held]
  held_logits = jax.vmap(predict, in_axes=(0, None))(path, held_x)
  held_cross_entropy = jax.vmap(cross_entropy, in_axes=(0, None))(
      held_logits, held_labels)
  holdout = jax.vmap(accuracy, in_axes=(0, None))(held_logits, held_labels)
  best = int(jnp.argmin(held_cross_entropy))

  train_x, test_x = standardize_features(train_features, test_features)
  params = fit(train_x, train_labels, grid[best], num_classes=num_classes,
               num_steps=num_steps,
               init=jax.tree.map(lambda p: p[best], path))
  test_predictions = np.asarray(jnp.argmax(predict(params, test_x), axis=1))
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (test_labels, test_predictions), 1)
  return {
      'test_accuracy': float(np.mean(test_predictions == test_labels)),
      'confusion_matrix': confusion.tolist(),
      'train_accuracy': float(accuracy(predict(params, train_x),
                                       train_labels)),
      'best_l2': float(ordered[best]),
      'l2_grid': [float(v) for v in ordered],
      'holdout_accuracies': [float(v) for v in holdout],
      'holdout_cross_entropies': [float(v) for v in held_cross_entropy],
      'seconds': time.time() - start,
  }


def default_config() -> ml_collections.ConfigDict:
  """The L2 grid the held-out split chooses from, and L-BFGS steps per L2
  value (warm-started, preconditioned) and for the refit. The grid reaches
  down to 1e-8, so that the 1e-6 that the low-rank features of short BYOL,
  SimSiam and pretext runs choose lies inside it rather than at its end
  (experiments/README.md, "How far the probe's L2 grid reaches")."""
  return ml_collections.ConfigDict(dict(
      every_epochs=0.0, l2_grid=(1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3,
                                 3e-3, 1e-2, 1e-1),
      holdout_fraction=0.1, num_steps=50))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'l2_grid': ranges.AT_LEAST_0,
          'holdout_fraction': ranges.between(0, 1, True, True),
          'num_steps': ranges.AT_LEAST_1}

# What each setting of default_config() means (--show_config).
HELP = {
    'l2_grid': 'L2 strengths the held-out part of the train split chooses from',
    'holdout_fraction': 'share of the train split held out to choose the L2 '
                        'strength',
    'num_steps': 'L-BFGS steps per L2 strength, and for the refit',
}


def configured_probe(eval_config: ml_collections.ConfigDict, seed: int,
                     train_features: np.ndarray, train_labels: np.ndarray,
                     test_features: np.ndarray, test_labels: np.ndarray
                     ) -> dict:
  """`linear_probe` with an evaluator's settings (`default_config`'s keys)."""
  return linear_probe(
      train_features, train_labels, test_features, test_labels,
      l2_grid=tuple(eval_config.l2_grid),
      holdout_fraction=eval_config.holdout_fraction,
      num_steps=eval_config.num_steps, seed=seed)


def make(eval_config: ml_collections.ConfigDict,
         config: ml_collections.ConfigDict) -> evaluators.Evaluator:
  def run(features: evaluators.Features) -> dict:
    result = configured_probe(eval_config, config.seed, features.train,
                              features.train_labels, features.test,
                              features.test_labels)
    confusion = np.asarray(result['confusion_matrix'])
    names = data.class_names(config.data.name, config.data.data_dir or None,
                             len(confusion))
    result['images'] = {'confusion_matrix': pictures.confusion_matrix(
        confusion, names, f'linear probe, test accuracy '
        f"{result['test_accuracy']:.4f}")}
    return result
  return evaluators.Evaluator(run=run, summary={
      'linear_probe_accuracy': 'test_accuracy'})
