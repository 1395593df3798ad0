"""3x3 stride-1 convolutions on CPU: XLA's (with today's kernel gradient by
taps where `models.conv` used them) against Winograd's F(2x2, 3x3) and
F(4x4, 3x3) (`models.winograd`) at several chunk sizes, at every 3x3
stride-1 layer shape of ResNet-18 (full width at 32x32) and of the `cpu`
preset's encoder (width 0.25 at 24x24), 256 inputs. Each candidate is timed
forward alone and forward+backward (output, input gradient and kernel
gradient, as training needs them); the candidates of a layer take turns
(this host's speed drifts by 10-30% within an hour). The last column is what
`models.conv.winograd_plan` chooses.

  python experiments/conv_winograd.py [--repeats=5] [--layers=0,1]
"""
import time

from absl import app
from absl import flags
import jax
from jax import lax
import numpy as np

from ssljax.models import conv
from ssljax.models import winograd

FLAGS = flags.FLAGS
flags.DEFINE_integer('repeats', 5, 'Timed rounds; the median is shown.')
flags.DEFINE_list('layers', None, 'Indices into LAYERS (default: all).')
flags.DEFINE_list('chunk_values', ['262144', '524288', '1048576'],
                  'Input values per chunk of the batch to try.')

NHWC = ('NHWC', 'HWIO', 'NHWC')
LAYERS = [(32, 64), (16, 128), (8, 256), (4, 512),
          (24, 16), (12, 32), (6, 64), (3, 128)]  # (side, channels)


def today(x, kernel):
  """`models.conv` as it was before Winograd: XLA's forward and input
  gradient, the kernel gradient by taps where `taps_are_faster`."""
  return conv.conv_general_dilated(
      x, kernel, (1, 1), 'SAME', dimension_numbers=lax.conv_dimension_numbers(
          x.shape, kernel.shape, NHWC), formulations=('taps',))


def fwd_and_fwd_bwd(fn):
  """Jitted forward, and forward + both gradients."""
  def fwd_bwd(x, kernel, dy):
    y, vjp = jax.vjp(fn, x, kernel)
    return y, *vjp(dy)
  return jax.jit(fn), jax.jit(fwd_bwd)


def main(argv):
  del argv
  print('| layer (side, channels) | GFLOP fwd | candidate | fwd ms | '
        'fwd+bwd ms | fwd+bwd / today | max rel. error |')
  print('|---|---|---|---|---|---|---|')
  for index in map(int, FLAGS.layers or range(len(LAYERS))):
    side, channels = LAYERS[index]
    key = jax.random.split(jax.random.PRNGKey(index), 3)
    x = jax.random.normal(key[0], (256, side, side, channels))
    kernel = jax.random.normal(key[1], (3, 3, channels, channels)) * 0.05
    dy = jax.random.normal(key[2], x.shape)
    candidates = {'today': today}
    for m in (2, 4):
      for values in sorted({max(1, min(256, int(v) // (side * side * channels)))
                            for v in FLAGS.chunk_values}):
        chunk = max(d for d in range(1, values + 1) if 256 % d == 0)
        candidates[f'F{m} chunk {chunk}'] = (
            lambda x, k, m=m, chunk=chunk: winograd.conv3x3(x, k, m, chunk))
    jitted = {name: fwd_and_fwd_bwd(fn) for name, fn in candidates.items()}
    reference = jitted['today'][1](x, kernel, dy)
    errors = {name: max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                        for a, b in zip(fns[1](x, kernel, dy), reference))
              for name, fns in jitted.items()}
    times = {(name, part): [] for name in jitted for part in (0, 1)}
    for _ in range(FLAGS.repeats):
      for name, fns in jitted.items():
        for part, args in ((0, (x, kernel)), (1, (x, kernel, dy))):
          start = time.perf_counter()
          jax.block_until_ready(fns[part](*args))
          times[name, part].append(1e3 * (time.perf_counter() - start))
    ms = {k: float(np.median(v)) for k, v in times.items()}
    plan = conv.winograd_plan(x, kernel, (1, 1), 'SAME', None, None,
                              lax.conv_dimension_numbers(
                                  x.shape, kernel.shape, NHWC), 1)
    chosen = f'F{plan[0]} chunk {plan[1]}' if plan else 'today'
    gflop = 2 * 256 * side * side * 9 * channels**2 / 1e9
    for name in jitted:
      print(f'| {side}, {channels} | {gflop:.1f} | {name}'
            f'{" (chosen)" if name == chosen else ""} | {ms[name, 0]:.1f} | '
            f'{ms[name, 1]:.1f} | {ms[name, 1] / ms["today", 1]:.2f} | '
            f'{errors[name]:.1e} |', flush=True)


if __name__ == '__main__':
  app.run(main)
