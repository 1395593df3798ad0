"""What made the old linear probe slow and what the new one changed, measured
on cached features (written by `probe_vs_sklearn.py --features_cache=FILE`):
the conditioning of the features, the cost of the gradient with and without
a stored transpose, the cost of an L-BFGS step vmapped over the L2 grid
against one fit, plain against preconditioned convergence, and the held-out
accuracy and cross-entropy along the L2 path.

  python experiments/probe_internals.py --features_cache=/tmp/feat_r18.npz
"""
import functools

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from ssljax import defaults
from ssljax.evaluators import linear_probe
from timing import median_ms

FLAGS = flags.FLAGS
flags.DEFINE_string('features_cache', None, 'The .npz of the features.')


def main(argv):
  del argv
  cached = np.load(FLAGS.features_cache)
  features, labels = cached['train_x'], cached['train_y']
  order = np.random.default_rng(0).permutation(len(features))
  held, kept = order[:len(order) // 10], order[len(order) // 10:]
  x, held_x = (jnp.asarray(a) for a in linear_probe.standardize_features(
      features[kept], features[held]))
  y, held_y = jnp.asarray(labels[kept]), labels[held]
  n, d = x.shape
  eigenvalues = np.linalg.eigvalsh(np.asarray(x.T @ x / n))
  print(f'{n} x {d} standardised features; eigenvalues of X^T X / n from '
        f'{eigenvalues.min():.4f} to {eigenvalues.max():.1f}')

  params = {'w': jnp.zeros((d, 10)), 'b': jnp.zeros(10)}
  l2 = jnp.float32(1e-6)
  autodiff = jax.jit(jax.value_and_grad(lambda p: linear_probe.cross_entropy(
      linear_probe.predict(p, x), y) + l2 * jnp.sum(p['w'] ** 2)))
  stored = jax.jit(jax.value_and_grad(functools.partial(
      linear_probe.objective, x=x, x_t=x.T, labels=y, l2=l2)))
  print(f'objective + gradient: {median_ms(autodiff, params):.1f} ms by '
        f'autodiff, {median_ms(stored, params):.1f} ms with the stored '
        'transpose')

  l2_grid = defaults.get_config().evals.linear_probe.l2_grid
  grid = jnp.asarray(sorted(l2_grid), jnp.float32)
  ones = jnp.ones(d)
  plain = jax.jit(linear_probe.lbfgs, static_argnums=6)
  vmapped = jax.jit(jax.vmap(linear_probe.lbfgs, (None,) * 4 + (0, None, None)),
                    static_argnums=6)
  steps = 10
  one = median_ms(plain, params, x, x.T, y, l2, ones, steps, repeats=3)
  grid_ms = median_ms(vmapped, params, x, x.T, y, grid, ones, steps, repeats=3)
  print(f'L-BFGS, ms per step: one fit {one / steps:.0f}, vmapped over '
        f'{len(grid)} L2 values {grid_ms / steps:.0f} ({grid_ms / one:.1f}x '
        'one fit, for 8 fits)')

  value = lambda p: float(linear_probe.objective(p, x, x.T, y, l2))
  for steps in (25, 50, 400):
    preconditioned = linear_probe.fit(x, y, l2, num_classes=10, num_steps=steps)
    print(f'l2 = 1e-6, {steps} steps: objective plain '
          f'{value(plain(params, x, x.T, y, l2, ones, steps)):.6f}, '
          f'preconditioned {value(preconditioned):.6f}')

  ordered = sorted(l2_grid, reverse=True)
  path = linear_probe.fit_path(x, y, jnp.asarray(ordered, jnp.float32),
                           num_classes=10, num_steps=50)
  print('| l2 | held-out accuracy | held-out cross-entropy |')
  print('|---|---|---|')
  for i, l2_value in enumerate(ordered):
    p = jax.tree.map(lambda a: a[i], path)  # pylint: disable=cell-var-from-loop
    logits = linear_probe.predict(p, held_x)
    print(f'| {l2_value:g} | '
          f'{float(linear_probe.accuracy(logits, held_y)):.4f} | '
          f'{float(linear_probe.cross_entropy(logits, held_y)):.4f} |')


if __name__ == '__main__':
  flags.mark_flags_as_required(['features_cache'])
  app.run(main)
