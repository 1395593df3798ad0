"""Linear-probe evaluation: features from the frozen encoder, then a jitted
multinomial logistic regression.

The L2 strength is chosen on a held-out part of the train split (one vmapped
fit over the whole grid), the probe is refit on the full train split with it,
and top-1 accuracy is measured on the full test split. The objective is smooth
and convex, so full-batch L-BFGS converges in a few hundred steps.
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


def objective(params, x, labels, l2):
  """Mean cross-entropy + l2 * ||W||^2 (the bias is not regularised)."""
  logits = x @ params['w'] + params['b']
  log_probs = jax.nn.log_softmax(logits)
  nll = -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))
  return nll + l2 * jnp.sum(params['w'] ** 2)


@functools.partial(jax.jit, static_argnames=('num_classes', 'num_steps'))
def fit(x, labels, l2, *, num_classes: int, num_steps: int):
  """Minimises `objective` from zero weights with L-BFGS."""
  loss = functools.partial(objective, x=x, labels=labels, l2=l2)
  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad,
                                   value_fn=loss)
    return (optax.apply_updates(params, updates), state), None

  params = {'w': jnp.zeros((x.shape[1], num_classes), x.dtype),
            'b': jnp.zeros((num_classes,), x.dtype)}
  (params, _), _ = jax.lax.scan(step, (params, solver.init(params)), None,
                                length=num_steps)
  return params


def _accuracy(params, x, labels):
  return jnp.mean(jnp.argmax(x @ params['w'] + params['b'], axis=1) == labels)


def _standardize(fit_x, *others):
  mean, std = fit_x.mean(0), fit_x.std(0) + 1e-6
  return [(x - mean) / std for x in (fit_x,) + others]


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray,
                 test_features: np.ndarray, test_labels: np.ndarray, *,
                 l2_grid: Sequence[float] = DEFAULT_L2_GRID,
                 holdout_fraction: float = 0.1, num_steps: int = 100,
                 seed: int = 0) -> dict:
  """Returns test/train accuracy, the chosen L2 and the held-out accuracies."""
  start = time.time()
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  order = np.random.default_rng(seed).permutation(len(train_features))
  num_holdout = max(1, int(holdout_fraction * len(order)))
  held, kept = order[:num_holdout], order[num_holdout:]
  fit_x, held_x = _standardize(train_features[kept], train_features[held])
  grid = jnp.asarray(l2_grid, jnp.float32)
  fit_grid = jax.vmap(functools.partial(fit, num_classes=num_classes,
                                        num_steps=num_steps),
                      in_axes=(None, None, 0))
  params = fit_grid(fit_x, train_labels[kept], grid)
  holdout = jax.vmap(_accuracy, in_axes=(0, None, None))(
      params, held_x, train_labels[held])
  best = int(jnp.argmax(holdout))

  train_x, test_x = _standardize(train_features, test_features)
  params = fit(train_x, train_labels, grid[best], num_classes=num_classes,
               num_steps=num_steps)
  return {
      'test_accuracy': float(_accuracy(params, test_x, test_labels)),
      'train_accuracy': float(_accuracy(params, train_x, train_labels)),
      'best_l2': float(l2_grid[best]),
      'l2_grid': [float(v) for v in l2_grid],
      'holdout_accuracies': [float(v) for v in holdout],
      'seconds': time.time() - start,
  }
