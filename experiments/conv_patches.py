"""The stem and the strided and 1x1 convolutions on CPU: `models.conv` before
the patch products (XLA's forward and input gradient, the kernel gradient by
taps where `taps_are_faster`) against `models.patches` at three chunk sizes,
at those layer shapes of ResNet-18 (full width at 32x32) and of the `cpu`
preset's encoder (width 0.25 at 24x24), 256 inputs, forward+backward (output
and both gradients), the candidates of a layer taking turns. The last column
says whether `models.conv.patches_chunk` chooses the patches.

  python experiments/conv_patches.py [--repeats=5]
"""
import time

from absl import app
from absl import flags
import jax
from jax import lax
import numpy as np

from ssljax.models import conv
from ssljax.models import patches

FLAGS = flags.FLAGS
flags.DEFINE_integer('repeats', 5, 'Timed rounds; the median is shown.')

NHWC = ('NHWC', 'HWIO', 'NHWC')
LAYERS = [  # (side, C_in, C_out, kernel, stride)
    (32, 3, 64, 3, 1), (32, 64, 128, 3, 2), (32, 64, 128, 1, 2),
    (16, 128, 256, 3, 2), (16, 128, 256, 1, 2), (8, 256, 512, 3, 2),
    (8, 256, 512, 1, 2),
    (24, 3, 16, 3, 1), (24, 16, 32, 3, 2), (24, 16, 32, 1, 2),
    (12, 32, 64, 3, 2), (6, 64, 128, 3, 2)]


def fwd_bwd(fn):
  def both(x, kernel, dy):
    y, vjp = jax.vjp(fn, x, kernel)
    return y, *vjp(dy)
  return jax.jit(both)


def main(argv):
  del argv
  print('| layer (side, C_in -> C_out, k, stride) | before ms | patches ms '
        '(chunk) at 2^18, 2^19, 2^20 patch values | best / before | chosen |')
  print('|---|---|---|---|---|')
  for side, c_in, c_out, k, s in LAYERS:
    key = jax.random.split(jax.random.PRNGKey(side + c_in), 3)
    pads = tuple(map(tuple, lax.padtype_to_pads((side, side), (k, k), (s, s),
                                                'SAME')))
    x = jax.random.normal(key[0], (256, side, side, c_in))
    kernel = jax.random.normal(key[1], (k, k, c_in, c_out)) * 0.1
    dy = jax.random.normal(key[2], (256, -(-side // s), -(-side // s), c_out))
    dims = lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)

    def before(x, kernel):
      return conv.conv_general_dilated(x, kernel, (s, s), pads,
                                       dimension_numbers=dims,
                                       formulations=('taps',))
    candidates = {'before': fwd_bwd(before)}
    per_image = dy.shape[1] * dy.shape[2] * k * k * c_in
    for values in (2**18, 2**19, 2**20):
      chunk = conv.chunk_size(256, per_image, values)
      candidates[chunk] = fwd_bwd(lambda x, w, chunk=chunk: (
          patches.conv_by_patches(x, w, s, pads, chunk)))
    reference = candidates['before'](x, kernel, dy)
    for name, fn in candidates.items():
      error = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                  for a, b in zip(fn(x, kernel, dy), reference))
      assert error < 1e-4, (name, error)
    times = {name: [] for name in candidates}
    for _ in range(FLAGS.repeats):
      for name, fn in candidates.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(x, kernel, dy))
        times[name].append(1e3 * (time.perf_counter() - start))
    ms = {name: float(np.median(t)) for name, t in times.items()}
    best = min(ms[c] for c in candidates if c != 'before')
    chosen = conv.patches_chunk(x, kernel, (s, s), None, None, dims, 1)
    print(f'| {side}, {c_in} -> {c_out}, {k}x{k}, s{s} | {ms["before"]:.1f} | '
          + ', '.join(f'{ms[c]:.1f} ({c})' for c in candidates
                      if c != 'before')
          + f' | {best / ms["before"]:.2f} | '
          + (f'yes ({chosen})' if chosen else 'no') + ' |', flush=True)


if __name__ == '__main__':
  app.run(main)
