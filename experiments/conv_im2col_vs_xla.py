"""Is a 3x3 convolution faster on XLA:CPU as im2col + one matrix multiply?

XLA's float32 matmul runs at ~200 GFLOP/s on our 2-core CPU, its backward
convolutions far below that, so expressing the convolution as a matmul over
the 9 shifted copies of the input (whose gradients are matmuls and slices)
could be a per-backend win. This times both, forward and forward+backward,
at the layer shapes of the `cpu` preset's ResNet-18 (width 0.25, 24x24 views,
2 x 64 images per step; stages at 24, 12, 6, 3 pixels) and at a full-width
first stage, and checks they agree.

  python experiments/conv_im2col_vs_xla.py
"""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from timing import median_ms

SHAPES = [(128, 24, 16), (128, 12, 32), (128, 6, 64), (128, 3, 128),
          (256, 32, 64)]  # (images, height = width, channels in = out)


def conv_xla(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def conv_im2col(x, w):
  kh, kw, cin, cout = w.shape
  n, h, width, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  cols = jnp.concatenate([xp[:, i:i + h, j:j + width, :]
                          for i in range(kh) for j in range(kw)], axis=-1)
  out = cols.reshape(-1, kh * kw * cin) @ w.reshape(-1, cout)
  return out.reshape(n, h, width, cout)


def main():
  print('| shape (N x H x W x C) | XLA fwd GFLOP/s | im2col fwd | XLA fwd+bwd '
        '| im2col fwd+bwd | fwd+bwd time im2col / XLA |')
  print('|---|---|---|---|---|---|')
  for n, size, c in SHAPES:
    x = jax.random.normal(jax.random.PRNGKey(0), (n, size, size, c))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, c, c)) * 0.1
    np.testing.assert_allclose(conv_im2col(x, w), conv_xla(x, w), atol=1e-3)
    flops = 2 * n * size * size * 9 * c * c
    row = {}
    for name, conv in (('xla', conv_xla), ('im2col', conv_im2col)):
      grad = jax.grad(lambda x, w, conv=conv: jnp.sum(conv(x, w) ** 2),
                      argnums=(0, 1))
      row[name] = (median_ms(jax.jit(conv), x, w) / 1e3,
                   median_ms(jax.jit(grad), x, w) / 1e3)
    gf = lambda t, k=1: k * flops / t / 1e9
    print(f"| {n}x{size}x{size}x{c} | {gf(row['xla'][0]):.0f} | "
          f"{gf(row['im2col'][0]):.0f} | {gf(row['xla'][1], 3):.0f} | "
          f"{gf(row['im2col'][1], 3):.0f} | "
          f"{row['im2col'][1] / row['xla'][1]:.2f} |", flush=True)


if __name__ == '__main__':
  main()
