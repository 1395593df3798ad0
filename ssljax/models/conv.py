"""A convolution for `nn.Conv(conv_general_dilated=...)` whose kernel gradient
is computed as one matrix product per kernel tap where that is faster.

XLA:CPU computes a convolution's kernel gradient as another convolution, over
the batch, and that is slow on most of ResNet-18's layers. The same gradient
is the sum over taps (i, j) of shifted_input(i, j)^T @ output_gradient:
matmuls that contract over all the batch's pixels, the operation XLA:CPU
runs fastest. Measured per layer (`python experiments/conv_kernel_grad.py`,
tables in experiments/results/performance.md), the taps win on every 1x1
convolution (one matmul, no shifted copies), on the strided 3x3 ones, and on
the 3x3 stride-1 ones with at least MIN_CHANNELS channels at MIN_PIXELS
pixels or more; on narrower or smaller 3x3 stride-1 layers the nine shifted
copies of the input cost as much as XLA's own gradient or more. So on CPU the
taps serve the layers of the first three kinds, and XLA's gradient all
others; on GPU and TPU this is `lax.conv_general_dilated` unchanged. The
forward and the input gradient are XLA's in every case.
"""
import functools

import jax
from jax import lax
import jax.numpy as jnp

MIN_CHANNELS = 64
MIN_PIXELS = 16 * 16
_NHWC = ('NHWC', 'HWIO', 'NHWC')


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, precision=None):
  """`lax.conv_general_dilated`, with the tap-wise kernel gradient where it
  is faster (see the module docstring)."""
  if not taps_are_faster(lhs, rhs, window_strides, lhs_dilation,
                         rhs_dilation, dimension_numbers,
                         feature_group_count):
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, precision=precision)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2],
                                  window_strides, padding)
  return conv_with_taps(lhs, rhs, tuple(window_strides),
                        tuple(tuple(p) for p in padding), precision)


def taps_are_faster(lhs, rhs, strides, lhs_dilation, rhs_dilation,
                    dimension_numbers, feature_group_count) -> bool:
  """Whether this convolution is of a kind whose kernel gradient the taps
  compute faster on this backend (see the module docstring)."""
  if (jax.default_backend() != 'cpu' or lhs.ndim != 4
      or feature_group_count != 1):
    return False
  if any(d != 1 for d in (lhs_dilation or ()) + (rhs_dilation or ())):
    return False
  if dimension_numbers != lax.conv_dimension_numbers(lhs.shape, rhs.shape,
                                                     _NHWC):
    return False
  if rhs.shape[:2] == (1, 1) or max(strides) > 1:
    return True
  out_pixels = lhs.shape[1] * lhs.shape[2]
  return rhs.shape[2] >= MIN_CHANNELS and out_pixels >= MIN_PIXELS


def _xla_conv(x, kernel, strides, pads, precision):
  return lax.conv_general_dilated(x, kernel, strides, pads,
                                  dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_with_taps(x, kernel, strides, pads, precision):
  """XLA's convolution (NHWC, HWIO), its kernel gradient by taps."""
  return _xla_conv(x, kernel, strides, pads, precision)


def _conv_fwd(x, kernel, strides, pads, precision):
  return _xla_conv(x, kernel, strides, pads, precision), (x, kernel)


def _conv_bwd(strides, pads, precision, residuals, grad):
  x, kernel = residuals
  _, input_vjp = jax.vjp(
      lambda x: _xla_conv(x, kernel, strides, pads, precision), x)
  return input_vjp(grad)[0], kernel_grad_by_taps(x, grad, kernel.shape,
                                                 strides, pads, precision)


conv_with_taps.defvjp(_conv_fwd, _conv_bwd)


def kernel_grad_by_taps(x, grad, kernel_shape, strides, pads, precision=None):
  """d loss / d kernel[i, j] = sum over output pixels p of
  x_padded[stride * p + (i, j)]^T grad[p]: one [C_in, C_out] matmul per tap,
  contracting over every image and pixel (NHWC input, HWIO kernel)."""
  kh, kw, cin, cout = kernel_shape
  _, oh, ow, _ = grad.shape
  (sh, sw) = strides
  padded = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  rows = grad.reshape(-1, cout)
  taps = [lax.dot_general(
      padded[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
      .reshape(-1, cin), rows, (((0,), (0,)), ((), ())), precision=precision)
          for i in range(kh) for j in range(kw)]
  return jnp.stack(taps).reshape(kernel_shape).astype(x.dtype)
