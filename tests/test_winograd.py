"""Winograd's convolution (`models.winograd`) and its gradients equal the
direct convolution: against the formula in float64 NumPy, and against XLA's
convolution on every 3x3 stride-1 layer shape of ResNet-18 and of the `cpu`
preset's encoder, within 1e-4 of the largest value, in float32."""
import functools

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import conv
from ssljax.models import winograd

NHWC = ('NHWC', 'HWIO', 'NHWC')


def _conv_numpy(x, kernel):
  """y[n, p, q, o] = sum over i, j, c of x_padded[n, p + i, q + j, c]
  kernel[i, j, c, o]: the 3x3 stride-1 SAME convolution, in float64."""
  x = np.pad(np.float64(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
  n, h, w = x.shape[0], x.shape[1] - 2, x.shape[2] - 2
  y = np.zeros((n, h, w, kernel.shape[-1]))
  for i in range(3):
    for j in range(3):
      y += np.einsum('npqc,co->npqo', x[:, i:i + h, j:j + w],
                     np.float64(kernel[i, j]))
  return y


def _value_and_grads(x, kernel, dy, fn):
  y, vjp = jax.vjp(fn, x, kernel)
  return (y, *vjp(dy))


def _relative_error(ours, reference):
  return float(np.max(np.abs(np.float64(ours) - reference))
               / np.max(np.abs(reference)))


@pytest.mark.parametrize('m,size,chunk', [(2, 7, 3), (4, 6, 2), (4, 3, 1)])
def test_winograd_matches_the_formula(m, size, chunk):
  # Sizes that are not multiples of m (partial tiles at the edge), one that
  # is smaller than a tile, and chunks of 1 to 3 images.
  rng = np.random.default_rng(size * 10 + m)
  x = rng.normal(size=(6, size, size, 3))
  kernel = rng.normal(size=(3, 3, 3, 5))
  dy = rng.normal(size=(6, size, size, 5))
  y, dx, dkernel = jax.jit(functools.partial(  # Compiled whole: quicker.
      _value_and_grads, fn=lambda x, k: winograd.conv3x3(x, k, m, chunk,
                                                          'highest')))(
          *(jnp.asarray(a, jnp.float32) for a in (x, kernel, dy)))
  assert _relative_error(y, _conv_numpy(x, kernel)) < 1e-5
  # The input gradient is the convolution of dy with the kernel rotated by
  # 180 degrees and its channels swapped, the kernel gradient the
  # correlation of the padded input with dy (the same formula, its roles
  # exchanged).
  assert _relative_error(dx, _conv_numpy(
      dy, np.flip(kernel, (0, 1)).swapaxes(2, 3))) < 1e-5
  x_padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dkernel_numpy = np.stack([np.stack([np.einsum(
      'npqc,npqo->co', x_padded[:, i:i + size, j:j + size], dy)
      for j in range(3)]) for i in range(3)])
  assert _relative_error(dkernel, dkernel_numpy) < 1e-5


# (side, channels) of every 3x3 stride-1 layer: ResNet-18 at full width on
# 32x32 inputs, then the `cpu` preset's width 0.25 on 24x24.
LAYERS = [(32, 64), (16, 128), (8, 256), (4, 512),
          (24, 16), (12, 32), (6, 64), (3, 128)]


@pytest.mark.slow  # 8 x 3 s, mostly compiling.
@pytest.mark.parametrize('side,channels', LAYERS)
def test_winograd_is_within_1e4_of_xla_on_every_layer_shape(side, channels):
  key = jax.random.split(jax.random.PRNGKey(side), 3)
  x = jax.random.normal(key[0], (4, side, side, channels))
  kernel = jax.random.normal(key[1], (3, 3, channels, channels)) * 0.05
  dy = jax.random.normal(key[2], x.shape)

  @jax.jit
  def both(x, kernel, dy):
    xla = _value_and_grads(x, kernel, dy, lambda x, k: lax.conv_general_dilated(
        x, k, (1, 1), 'SAME', dimension_numbers=NHWC, precision='highest'))
    return xla, _value_and_grads(
        x, kernel, dy, lambda x, k: winograd.conv3x3(x, k, 2, 2))
  # F(2x2, 3x3), the one `models.conv` uses (F(4x4, 3x3) is measured by
  # experiments/conv_winograd.py and checked against the formula above).
  for name, a, b in zip(('forward', 'input grad', 'kernel grad'),
                        *reversed(both(x, kernel, dy))):
    error = _relative_error(a, np.float64(b))
    assert error < 1e-4, (name, error)


def test_the_plan_uses_winograd_only_where_measured_faster(monkeypatch):
  monkeypatch.setattr(jax, 'default_backend', lambda: 'cpu')

  def plan(side, c_in, c_out, kernel=3, stride=1, dtype=jnp.float32, n=256,
           formulations=conv.FORMULATIONS):
    plans = []  # What the plan says while `jit` traces the convolution.

    def traced(lhs, rhs):
      plans.append(conv.winograd_plan(
          lhs, rhs, (stride, stride), 'SAME', None, None,
          lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC), 1,
          formulations))
      return lhs
    jax.eval_shape(traced, jax.ShapeDtypeStruct((n, side, side, c_in), dtype),
                   jax.ShapeDtypeStruct((kernel, kernel, c_in, c_out), dtype))
    return plans[0]
  m, chunk = plan(32, 64, 64)
  assert m in (2, 4) and 256 % chunk == 0
  assert chunk * 32 * 32 * 64 <= conv.WINOGRAD_CHUNK_VALUES
  assert plan(24, 16, 16) is None  # Narrow: XLA's convolution is faster.
  assert plan(32, 64, 64, stride=2) is None
  assert plan(32, 64, 64, kernel=1) is None
  assert plan(32, 3, 64) is None  # The stem.
  assert plan(32, 64, 64, n=2) is None  # 0.15 GFLOP: XLA compiles faster.
  assert plan(32, 64, 64, dtype=jnp.bfloat16) is None
  # The chunk divides the batch: 13 images of 256 KiB allow only 1 at a time.
  assert plan(32, 64, 64, n=13)[1] == 1
  # Only where Winograd is among the formulations allowed.
  assert plan(32, 64, 64, formulations=('taps', 'patches')) is None
  # On concrete arrays (run eagerly), the plan `jit` makes.
  x, k = jnp.zeros((16, 16, 16, 128)), jnp.zeros((3, 3, 128, 128))
  assert conv.winograd_plan(x, k, (1, 1), 'SAME', None, None,
                            lax.conv_dimension_numbers(x.shape, k.shape, NHWC),
                            1) == plan(16, 128, 128, n=16) == (2, 16)
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert plan(32, 64, 64) is None
