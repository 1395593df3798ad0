"""Convolutions as one matrix product over image patches (im2col), a chunk
of the batch at a time.

Written out, a k x k convolution with stride s is

    y[p] = sum over taps (i, j) of x_padded[s p + (i, j)] @ W[i, j]
         = patches(x)[p] @ W.reshape(k k C_in, C_out),

and its gradients are products with the same patches:

    d W = patches(x)^T @ d y,     d x_padded[s p + (i, j)] += d y[p] @ W[i, j]^T.

Over the whole batch the patch matrix holds k^2 / s^2 times the input and
streams through memory (on this CPU, 2-4x slower than XLA's convolution at
the first layers, experiments/results/performance.md); a chunk of a few
images keeps it in cache, where the products run near XLA:CPU's
matrix-multiply speed.
"""
import functools

import jax
from jax import lax
import jax.numpy as jnp


def _patches(x, k, s, pads):
  """[N, OH, OW, k * k * C]: the padded input under every output pixel."""
  _, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  oh = (h + sum(pads[0]) - k) // s + 1
  ow = (w + sum(pads[1]) - k) // s + 1
  taps = [padded[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
          for i in range(k) for j in range(k)]
  return jnp.concatenate(taps, axis=-1) if len(taps) > 1 else taps[0]


def _chunks(a, chunk):
  return a.reshape(a.shape[0] // chunk, chunk, *a.shape[1:])


def conv(x, kernel, s, pads, chunk, precision=None):
  """y = patches(x) @ W, `chunk` images at a time (NHWC, HWIO kernel)."""
  k, _, _, c_out = kernel.shape
  w = kernel.reshape(-1, c_out)
  y = lax.map(lambda xc: jnp.dot(_patches(xc, k, s, pads), w,
                                 precision=precision), _chunks(x, chunk))
  return y.reshape(x.shape[0], *y.shape[2:])


def input_grad(x_shape, dy, kernel, s, pads, chunk, precision=None):
  """d x: each tap's d y @ W[i, j]^T added back where that tap read,
  rows s p + i and columns s q + j of the padded input."""
  k, _, c_in, c_out = kernel.shape
  _, h, w, _ = x_shape
  hp, wp = h + sum(pads[0]), w + sum(pads[1])
  w_t = kernel.reshape(k * k, c_in, c_out)

  def one_chunk(dyc):
    _, oh, ow, _ = dyc.shape
    taps = jnp.einsum('npqo,tco->tnpqc', dyc, w_t, precision=precision)
    zero = jnp.zeros((), dyc.dtype)
    dx = sum(lax.pad(taps[i * k + j], zero, (
        (0, 0, 0), (i, hp - i - s * (oh - 1) - 1, s - 1),
        (j, wp - j - s * (ow - 1) - 1, s - 1), (0, 0, 0)))
             for i in range(k) for j in range(k))
    return dx[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w]
  dx = lax.map(one_chunk, _chunks(dy, chunk))
  return dx.reshape(x_shape)


def kernel_grad(x, dy, kernel_shape, s, pads, chunk, precision=None):
  """d W = sum over chunks of patches(x)^T @ d y."""
  k, _, _, c_out = kernel_shape

  def add_chunk(dw, pair):
    xc, dyc = pair
    cols = _patches(xc, k, s, pads)
    return dw + jnp.einsum('npqr,npqo->ro', cols, dyc,
                           precision=precision), None
  dw = jnp.zeros((k * k * kernel_shape[2], c_out), x.dtype)
  dw, _ = lax.scan(add_chunk, dw, (_chunks(x, chunk), _chunks(dy, chunk)))
  return dw.reshape(kernel_shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def conv_by_patches(x, kernel, s, pads, chunk, precision=None):
  """`conv` with its gradients as products with the patches, chunk by chunk
  (autodiff's transpose of the loop would store every chunk's patches)."""
  return conv(x, kernel, s, pads, chunk, precision)


def _fwd(x, kernel, s, pads, chunk, precision):
  return conv(x, kernel, s, pads, chunk, precision), (x, kernel)


def _bwd(s, pads, chunk, precision, residuals, dy):
  x, kernel = residuals
  return (input_grad(x.shape, dy, kernel, s, pads, chunk, precision),
          kernel_grad(x, dy, kernel.shape, s, pads, chunk, precision))


conv_by_patches.defvjp(_fwd, _bwd)
