"""The convolution as patch products (`models.patches`) and its gradients
equal the direct convolution: against the formula in float64 NumPy, and
against XLA's convolution on every layer shape `models.conv` gives it in
ResNet-18 and the `cpu` preset's encoder, within 1e-4 of the largest value,
in float32."""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import patches

NHWC = ('NHWC', 'HWIO', 'NHWC')


def _conv_numpy(x, kernel, s, pads):
  """y[n, p, q, o] = sum over i, j, c of
  x_padded[n, s p + i, s q + j, c] kernel[i, j, c, o], in float64."""
  x = np.pad(np.float64(x), ((0, 0), pads[0], pads[1], (0, 0)))
  k = kernel.shape[0]
  oh, ow = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
  y = np.zeros((x.shape[0], oh, ow, kernel.shape[-1]))
  for i in range(k):
    for j in range(k):
      y += np.einsum('npqc,co->npqo',
                     x[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s],
                     np.float64(kernel[i, j]))
  return y


def _relative_error(ours, reference):
  return float(np.max(np.abs(np.float64(ours) - reference))
               / np.max(np.abs(reference)))


@pytest.mark.parametrize('k,s,size,chunk', [(3, 2, 7, 2), (3, 2, 6, 1),
                                            (3, 1, 5, 3), (1, 2, 6, 2)])
def test_patches_match_the_formula(k, s, size, chunk):
  rng = np.random.default_rng(k * 100 + s * 10 + size)
  pads = lax.padtype_to_pads((size, size), (k, k), (s, s), 'SAME')
  x = rng.normal(size=(6, size, size, 3))
  kernel = rng.normal(size=(k, k, 3, 4))
  y_numpy = _conv_numpy(x, kernel, s, pads)
  dy = rng.normal(size=y_numpy.shape)
  y, vjp = jax.vjp(lambda x, w: patches.conv_by_patches(
      x, w, s, tuple(map(tuple, pads)), chunk, 'highest'),
                   jnp.float32(x), jnp.float32(kernel))
  dx, dkernel = vjp(jnp.float32(dy))
  assert _relative_error(y, y_numpy) < 1e-5
  # y is linear in x and in the kernel: each gradient is the convolution's
  # adjoint, <d y, conv(e)> summed, which finite sums in float64 give.
  dkernel_numpy = np.zeros_like(kernel)
  padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  dx_padded = np.zeros_like(padded)
  oh, ow = y_numpy.shape[1:3]
  for i in range(k):
    for j in range(k):
      rows = slice(i, i + s * (oh - 1) + 1, s)
      cols = slice(j, j + s * (ow - 1) + 1, s)
      dkernel_numpy[i, j] = np.einsum('npqc,npqo->co', padded[:, rows, cols],
                                      dy)
      dx_padded[:, rows, cols] += np.einsum('npqo,co->npqc', dy, kernel[i, j])
  dx_numpy = dx_padded[:, pads[0][0]:pads[0][0] + size,
                       pads[1][0]:pads[1][0] + size]
  assert _relative_error(dx, dx_numpy) < 1e-5
  assert _relative_error(dkernel, dkernel_numpy) < 1e-5


# (side, C_in, C_out, stride) of the layers `models.conv` computes by
# patches: ResNet-18's stem and strided 3x3 convolutions at full width on
# 32x32, and the `cpu` preset's (width 0.25, 24x24).
LAYERS = [(32, 3, 64, 1), (32, 64, 128, 2), (16, 128, 256, 2),
          (8, 256, 512, 2), (24, 3, 16, 1), (6, 64, 128, 2)]


@pytest.mark.slow  # 6 x 3 s, mostly compiling.
@pytest.mark.parametrize('side,c_in,c_out,s', LAYERS)
def test_patches_are_within_1e4_of_xla_on_every_layer_shape(side, c_in, c_out,
                                                            s):
  key = jax.random.split(jax.random.PRNGKey(side + c_in), 3)
  pads = tuple(map(tuple, lax.padtype_to_pads((side, side), (3, 3), (s, s),
                                              'SAME')))
  x = jax.random.normal(key[0], (4, side, side, c_in))
  kernel = jax.random.normal(key[1], (3, 3, c_in, c_out)) * 0.05
  dy = jax.random.normal(key[2], (4, -(-side // s), -(-side // s), c_out))

  @jax.jit
  def both(x, kernel, dy):
    def value_and_grads(fn):
      y, vjp = jax.vjp(fn, x, kernel)
      return (y, *vjp(dy))
    return (value_and_grads(lambda x, k: lax.conv_general_dilated(
        x, k, (s, s), pads, dimension_numbers=NHWC, precision='highest')),
            value_and_grads(lambda x, k: patches.conv_by_patches(
                x, k, s, pads, 2)))
  for name, ours, xla in zip(('forward', 'input grad', 'kernel grad'),
                             *both(x, kernel, dy)):
    assert _relative_error(ours, np.float64(xla)) < 1e-4, name
