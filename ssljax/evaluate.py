"""Linear-probe evaluation: features from the frozen encoder, then a jitted
multinomial logistic regression.

The L2 strength is chosen by cross-entropy on a held-out part of the train
split (one warm-started pass over the grid, strong to weak), the probe is
refit on the full train split with it, and top-1 accuracy is measured on the
full test split. The objective is smooth and convex, so full-batch L-BFGS
converges, and from a warm start and preconditioned in a few dozen steps.
"""
import functools
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

DEFAULT_L2_GRID = (1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1)


def extract_features(encode: Callable[[jax.Array], jax.Array],
                     images: np.ndarray, batch_size: int) -> np.ndarray:
  """Applies `encode` batch by batch; the last batch is padded so that
  `encode` compiles once, and the padding is dropped."""
  features = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    padded = np.concatenate(
        [batch, np.zeros((batch_size - len(batch),) + batch.shape[1:],
                         batch.dtype)])
    features.append(np.asarray(encode(padded), np.float32)[:len(batch)])
  return np.concatenate(features)


@jax.custom_vjp
def _logits(x, x_t, w):
  """x @ w. Its gradient in w reads the stored transpose x_t = x.T: XLA:CPU
  otherwise transposes the whole feature matrix for every gradient, which
  made the objective and gradient 3x slower (30.1 vs 9.7 ms at 45,000 x 512,
  `experiments/probe_internals.py`)."""
  return x @ w


def _logits_fwd(x, x_t, w):
  return x @ w, x_t


def _logits_bwd(x_t, grad):
  return None, None, x_t @ grad  # The features are constants.


_logits.defvjp(_logits_fwd, _logits_bwd)


def _cross_entropy(logits, labels):
  log_probs = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))


def objective(params, x, x_t, labels, l2):
  """Mean cross-entropy + l2 * ||W||^2 (the bias is not regularised)."""
  logits = _logits(x, x_t, params['w']) + params['b']
  return _cross_entropy(logits, labels) + l2 * jnp.sum(params['w'] ** 2)


def _lbfgs(params, x, x_t, labels, l2, scale, num_steps):
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
  The values run one after another on purpose: L-BFGS vmapped over the
  8-value grid cost 3.4x eight separate fits (its line search's loop under
  vmap runs every value to the slowest one's iteration count).

  Standardised features are strongly correlated (the eigenvalues of X^T X / n
  spanned 0.003 to 287 on a ResNet-18's), which makes plain L-BFGS need
  hundreds of steps. So each problem is solved in the eigenbasis V of
  X^T X / n, where ||W||^2 is unchanged, and in the variables that make its
  Hessian at the start the identity: the cross-entropy's Hessian at uniform
  predictions is (I - 11^T / K) / K (x) X^T X / n, so direction j is scaled by
  1 / sqrt(lambda_j / K + 2 l2). There 25-50 steps reach the optimum.
  """
  eigenvalues, basis = jnp.linalg.eigh(x.T @ x / x.shape[0])
  curvature = jnp.maximum(eigenvalues, 0) / num_classes
  x_rot = x @ basis
  x_rot_t = x_rot.T
  if init is None:
    init = {'w': jnp.zeros((x.shape[1], num_classes), x.dtype),
            'b': jnp.zeros((num_classes,), x.dtype)}

  def solve(params, l2):
    params = _lbfgs(params, x_rot, x_rot_t, labels, l2,
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


def _held_out_cross_entropy(params, x, labels):
  return _cross_entropy(x @ params['w'] + params['b'], labels)


def _accuracy(params, x, labels):
  return jnp.mean(jnp.argmax(x @ params['w'] + params['b'], axis=1) == labels)


def _standardize(fit_x, *others):
  mean, std = fit_x.mean(0), fit_x.std(0) + 1e-6
  return [(x - mean) / std for x in (fit_x,) + others]


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray,
                 test_features: np.ndarray, test_labels: np.ndarray, *,
                 l2_grid: Sequence[float] = DEFAULT_L2_GRID,
                 holdout_fraction: float = 0.1, num_steps: int = 50,
                 seed: int = 0) -> dict:
  """Returns test/train accuracy, the chosen L2 and the held-out accuracies
  and cross-entropies."""
  start = time.time()
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  order = np.random.default_rng(seed).permutation(len(train_features))
  num_holdout = max(1, int(holdout_fraction * len(order)))
  held, kept = order[:num_holdout], order[num_holdout:]
  fit_x, held_x = _standardize(train_features[kept], train_features[held])
  # Strongest L2 first: the path's warm starts then go from the easy,
  # well-conditioned problems to the hard ones.
  ordered = sorted(l2_grid, reverse=True)
  grid = jnp.asarray(ordered, jnp.float32)
  path = fit_path(fit_x, train_labels[kept], grid, num_classes=num_classes,
                  num_steps=num_steps)
  # Chosen by held-out cross-entropy, not accuracy: accuracy moves in steps
  # of single images and was flat within 0.1 points over three decades of L2
  # on real features, which made the choice a coin toss; the cross-entropy
  # is smooth in L2 and had one clear minimum (experiments/results/
  # performance.md).
  held_x, held_labels = jnp.asarray(held_x), train_labels[held]
  cross_entropy = jax.vmap(_held_out_cross_entropy, in_axes=(0, None, None))(
      path, held_x, held_labels)
  holdout = jax.vmap(_accuracy, in_axes=(0, None, None))(
      path, held_x, held_labels)
  best = int(jnp.argmin(cross_entropy))

  train_x, test_x = _standardize(train_features, test_features)
  params = fit(train_x, train_labels, grid[best], num_classes=num_classes,
               num_steps=num_steps,
               init=jax.tree.map(lambda p: p[best], path))
  return {
      'test_accuracy': float(_accuracy(params, test_x, test_labels)),
      'train_accuracy': float(_accuracy(params, train_x, train_labels)),
      'best_l2': float(ordered[best]),
      'l2_grid': [float(v) for v in ordered],
      'holdout_accuracies': [float(v) for v in holdout],
      'holdout_cross_entropies': [float(v) for v in cross_entropy],
      'seconds': time.time() - start,
  }
