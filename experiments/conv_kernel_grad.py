"""XLA:CPU's kernel gradient of a convolution against nine tap matmuls
(`ssljax.models.conv.kernel_grad_by_taps`), at every convolution shape of
ResNet-18 on 256 inputs: full width at 32x32, and the `cpu` preset's width
0.25 at 24x24. Prints ms of each, XLA's forward for scale, and whether
`ssljax.models.conv` uses the taps for that layer. Then the whole encoder's
forward+backward with `models.conv` against XLA's convolutions throughout,
the two timed in alternation (this host's speed drifts by 10-30% within an
hour, so only interleaved timings compare). Both measure change 1 alone:
`models.conv` allows the taps only, `conv.using('taps')` (no Winograd, no
patches; those have experiments/conv_winograd.py and conv_patches.py).

  python experiments/conv_kernel_grad.py [--encoder_repeats=N]
"""
import sys
import time

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from ssljax.models import conv
from ssljax.models import resnet
from timing import median_ms

NHWC = ('NHWC', 'HWIO', 'NHWC')


def resnet18_convs(width, size):
  """(input H = W, C_in, C_out, kernel, stride) of each distinct layer."""
  base = max(1, round(64 * width))
  layers = [(size, base, base, 3, 1)]
  for stage in range(1, 4):
    c, h = base * 2**stage, size // 2**(stage - 1)
    layers += [(h, c // 2, c, 3, 2), (h, c // 2, c, 1, 2), (h // 2, c, c, 3, 1)]
  return layers


def encoder_ab(width, size, repeats):
  """Median ms of the encoder's forward+backward with XLA's convolutions and
  with `models.conv`, timed alternately, and the median of paired ratios."""
  x = jax.random.normal(jax.random.PRNGKey(0), (256, size, size, 3))
  steps = {}
  for name, fn in (('xla', lax.conv_general_dilated),
                   ('taps', conv.using('taps'))):  # Change 1 alone.
    model = resnet.BACKBONES['resnet18'](width=width, convolution=fn)
    variables = model.init(jax.random.PRNGKey(1), x, train=True)

    def loss(params, model=model, variables=variables):
      h, _ = model.apply({**variables, 'params': params}, x, train=True,
                         mutable=['batch_stats'])
      return jnp.sum(h * h)

    grad = jax.jit(jax.grad(loss)).lower(variables['params']).compile()
    steps[name] = (grad, variables['params'])
  times = {name: [] for name in steps}
  for _ in range(repeats + 1):
    for name, (grad, params) in steps.items():
      start = time.perf_counter()
      jax.block_until_ready(grad(params))
      times[name].append(time.perf_counter() - start)
  xla, taps = (np.array(times[k][1:]) for k in ('xla', 'taps'))
  print(f'encoder width {width} at {size}x{size}, 256 inputs, forward+backward'
        f' (median of {repeats}): XLA convolutions {1e3 * np.median(xla):.1f}'
        f' ms, models.conv {1e3 * np.median(taps):.1f} ms, paired ratio '
        f'{np.median(taps / xla):.3f}', flush=True)


def main():
  print('| width | layer (H, C_in -> C_out, k, stride) | forward ms | XLA input '
        'grad ms | XLA kernel grad ms | taps ms | taps / XLA | taps used |')
  print('|---|---|---|---|---|---|---|---|')
  for width, size in ((0.25, 24), (1.0, 32)):
    for h, cin, cout, k, s in resnet18_convs(width, size):
      x = jax.random.normal(jax.random.PRNGKey(0), (256, h, h, cin))
      w = jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout))
      pads = lax.padtype_to_pads((h, h), (k, k), (s, s), 'SAME')
      forward = jax.jit(lambda x, w: lax.conv_general_dilated(  # pylint: disable=cell-var-from-loop
          x, w, (s, s), pads, dimension_numbers=NHWC))
      grad = jax.random.normal(jax.random.PRNGKey(2), forward(x, w).shape)
      xla = jax.jit(lambda x, w, g: jax.vjp(lambda w: forward(x, w), w)[1](g)[0])  # pylint: disable=cell-var-from-loop
      xla_input = jax.jit(lambda x, w, g: jax.vjp(lambda x: forward(x, w), x)[1](g)[0])  # pylint: disable=cell-var-from-loop
      taps = jax.jit(lambda x, w, g: conv.kernel_grad_by_taps(  # pylint: disable=cell-var-from-loop
          x, g, w.shape, (s, s), pads))
      reference, ours = xla(x, w, grad), taps(x, w, grad)
      error = float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))
      assert error < 1e-4, (h, cin, cout, k, s, error)
      used = conv.taps_are_faster(x, w, (s, s), None, None,
                                  lax.conv_dimension_numbers(
                                      x.shape, w.shape, NHWC), 1)
      fwd_ms, input_ms, xla_ms, taps_ms = (median_ms(forward, x, w),
                                           median_ms(xla_input, x, w, grad),
                                           median_ms(xla, x, w, grad),
                                           median_ms(taps, x, w, grad))
      print(f'| {width} | {h}, {cin} -> {cout}, {k}x{k}, s{s} | {fwd_ms:.1f} | '
            f'{input_ms:.1f} | {xla_ms:.1f} | {taps_ms:.1f} | '
            f'{taps_ms / xla_ms:.2f} | '
            f'{"yes" if used else "no"} |', flush=True)


  repeats = int(next((a.split('=')[1] for a in sys.argv[1:]
                       if a.startswith('--encoder_repeats=')), 7))
  if repeats:  # --encoder_repeats=0: the per-layer table only.
    encoder_ab(0.25, 24, repeats)
    encoder_ab(1.0, 32, max(1, repeats // 2))


if __name__ == '__main__':
  main()
