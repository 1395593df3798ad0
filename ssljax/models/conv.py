"""Convolutions for `nn.Conv(conv_general_dilated=...)`, each computed the
way that runs fastest on CPU for its layer shape.

XLA:CPU's convolutions run far below its matrix multiplies, above all in
their gradients, so on CPU these formulations serve the layers of ResNets,
chosen per layer shape by what `experiments/conv_winograd.py`,
`experiments/conv_patches.py` and `experiments/conv_kernel_grad.py`
measured (tables in experiments/results/performance.md):
- 3x3 stride-1 layers of at least WINOGRAD_MIN_CHANNELS channels on images
  of 4x4 or more, in float32: Winograd's F(2x2, 3x3) (`models.winograd`),
  forward and both gradients, 16 matrix products per chunk of the batch:
  0.44-0.67 of the time of the formulation below at ResNet-18's layers, 0.70
  at 6x6 and 64 channels; 1.2-1.8 times as long on narrower layers and on
  3x3 images. F(4x4, 3x3) was at most 11% faster on one layer shape, and its
  gradients in a ResNet-18 strayed up to 4e-4 from float64 (F(2x2, 3x3)'s
  and XLA's: 1e-6), so it is not used.
- The stem (3 input channels) of at least PATCHES_MIN_CHANNELS output
  channels and the strided 3x3 layers of at least PATCHES_MIN_CHANNELS input
  channels, in float32: one matrix product with the image patches (im2col)
  per chunk of the batch, forward and both gradients (`models.patches`):
  0.46 of the time at ResNet-18's stem, 0.62-0.88 at its strided layers.
- Every 1x1 and the other strided convolutions, and the 3x3 stride-1 ones
  of MIN_CHANNELS at MIN_PIXELS or more that Winograd does not take
  (bfloat16): XLA's forward and input gradient, and
  the kernel gradient as one matmul per kernel tap, sum over taps (i, j) of
  shifted_input(i, j)^T @ output_gradient, contracting over all the batch's
  pixels (XLA computes it as another convolution, over the batch).
- Everything else: XLA's convolution.
Winograd and the patches take only layers of MIN_FLOPS or more. On GPU and
TPU this is `lax.conv_general_dilated` unchanged.

The choice is a function of the layer's shapes and dtypes, its other
arguments, `jax.default_backend()` and the formulations allowed, an explicit
argument (`conv_general_dilated(..., formulations=...)`, all of FORMULATIONS
by default; `using(*names)` is the function that allows only `names`, to
hand to `ResNet(convolution=...)`), and of nothing else: run eagerly, op by
op, a layer computes what it computes under `jit`, far more slowly (each of
a formulation's ops and loops compiles and dispatches on its own: Winograd
took 0.57 s eagerly for 32 images of 16x16x64 and a 3x3 64 -> 64 kernel,
XLA's convolution 8.5 ms).
"""
import functools
import math

import jax
from jax import lax
import jax.numpy as jnp

from ssljax.models import patches
from ssljax.models import winograd

MIN_CHANNELS = 64
MIN_PIXELS = 16 * 16
WINOGRAD_MIN_CHANNELS = 64
# Input values per chunk of the batch (2 MiB of float32): the chunk's
# transformed input and products then stay within this CPU's caches.
WINOGRAD_CHUNK_VALUES = 2**19
PATCHES_MIN_CHANNELS = 64
# Winograd and the patches only for layers of at least this many direct
# FLOPs forward: below it a layer takes a few ms either way, and their loops
# cost compile time (`vicreg_tico:smoke`'s train step: 9.9 s against 7.8 s,
# for 10 ms a step).
MIN_FLOPS = 0.5e9
# Patch-matrix values per chunk of the batch (4 MiB of float32).
PATCHES_CHUNK_VALUES = 2**20
_NHWC = ('NHWC', 'HWIO', 'NHWC')
# The formulations `conv_general_dilated` may choose (all, by default).
FORMULATIONS = ('taps', 'winograd', 'patches')


def _checked(formulations) -> tuple:
  """`formulations` as a tuple, each a name in FORMULATIONS."""
  if isinstance(formulations, str):
    raise TypeError(f'formulations={formulations!r} must be a sequence of '
                    f'names of {FORMULATIONS}, not one string.')
  formulations = tuple(formulations)
  unknown = [f for f in formulations if f not in FORMULATIONS]
  if unknown:
    raise ValueError(f'Unknown formulations {unknown}; allowed values: '
                     f'{FORMULATIONS}.')
  return formulations


def using(*names):
  """`conv_general_dilated` that chooses among the formulations `names` only,
  and XLA's convolution where those do not apply (`using()`: XLA's
  convolution throughout), for `ResNet(convolution=...)` and the
  experiments that time one formulation against another."""
  return functools.partial(conv_general_dilated, formulations=_checked(names))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, precision=None, *,
                         formulations=FORMULATIONS):
  """`lax.conv_general_dilated`, computed by Winograd's algorithm, by patch
  products or with the tap-wise kernel gradient where that is faster, of
  `formulations` only (see the module docstring): the same choice eagerly
  and under `jit`."""
  formulations = _checked(formulations)
  plan = winograd_plan(lhs, rhs, window_strides, padding, lhs_dilation,
                       rhs_dilation, dimension_numbers, feature_group_count,
                       formulations)
  if plan:
    return winograd.conv3x3(lhs, rhs, *plan, precision)
  chunk = patches_chunk(lhs, rhs, window_strides, lhs_dilation, rhs_dilation,
                        dimension_numbers, feature_group_count, formulations)
  if chunk:
    if isinstance(padding, str):
      padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2],
                                    window_strides, padding)
    return patches.conv_by_patches(lhs, rhs, window_strides[0],
                                   tuple(tuple(p) for p in padding), chunk,
                                   precision)
  if not taps_are_faster(lhs, rhs, window_strides, lhs_dilation,
                         rhs_dilation, dimension_numbers,
                         feature_group_count, formulations):
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, precision=precision)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2],
                                  window_strides, padding)
  return conv_with_taps(lhs, rhs, tuple(window_strides),
                        tuple(tuple(p) for p in padding), precision)


def _plain_nhwc_cpu(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
                    feature_group_count) -> bool:
  """A dense, undilated NHWC/HWIO convolution on the CPU backend, whether
  traced or run eagerly."""
  return (jax.default_backend() == 'cpu' and lhs.ndim == 4
          and feature_group_count == 1
          and all(d == 1 for d in (lhs_dilation or ()) + (rhs_dilation or ()))
          and dimension_numbers == lax.conv_dimension_numbers(
              lhs.shape, rhs.shape, _NHWC))


def chunk_size(n, per_image, values) -> int:
  """The most images, dividing the batch n, whose `per_image` values each
  come to at most `values` (at least one image)."""
  return max(d for d in range(1, n + 1) if n % d == 0 and
             (d == 1 or d * per_image <= values))


def _direct_flops(lhs_shape, rhs_shape, strides) -> float:
  """2 N OH OW kh kw C_in C_out: the direct convolution's forward FLOPs."""
  n, h, w, _ = lhs_shape
  return 2.0 * n * -(-h // strides[0]) * -(-w // strides[1]) * math.prod(
      rhs_shape)


def winograd_plan(lhs, rhs, strides, padding, lhs_dilation, rhs_dilation,
                  dimension_numbers, feature_group_count,
                  formulations=FORMULATIONS):
  """(m, chunk) of `winograd.conv3x3` for this convolution, or None where
  Winograd is not among `formulations` or not the faster way on this backend
  (see the module docstring)."""
  if 'winograd' not in formulations or not _plain_nhwc_cpu(
      lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
      feature_group_count):
    return None
  if (rhs.shape[:2] != (3, 3) or tuple(strides) != (1, 1)
      or lhs.dtype != jnp.float32 or rhs.dtype != jnp.float32):
    return None
  if padding != 'SAME' and (isinstance(padding, str) or [
      tuple(p) for p in padding] != [(1, 1), (1, 1)]):
    return None
  n, h, w, c_in = lhs.shape
  channels = min(c_in, rhs.shape[3])
  if (channels < WINOGRAD_MIN_CHANNELS or min(h, w) < 4
      or _direct_flops(lhs.shape, rhs.shape, strides) < MIN_FLOPS):
    return None
  return 2, chunk_size(n, h * w * c_in, WINOGRAD_CHUNK_VALUES)


def patches_chunk(lhs, rhs, strides, lhs_dilation, rhs_dilation,
                  dimension_numbers, feature_group_count,
                  formulations=FORMULATIONS):
  """Images per chunk of `patches.conv_by_patches` for this convolution, or
  None where the patches are not among `formulations` or not the faster way
  on this backend (see the module docstring)."""
  if 'patches' not in formulations or not _plain_nhwc_cpu(
      lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
      feature_group_count):
    return None
  k, k_w, c_in, _ = rhs.shape
  s = strides[0]
  if (k != k_w or tuple(strides) != (s, s) or lhs.dtype != jnp.float32
      or rhs.dtype != jnp.float32):
    return None
  strided = k == 3 and s == 2 and c_in >= PATCHES_MIN_CHANNELS
  stem = (k == 3 and s == 1 and c_in <= 4
          and rhs.shape[3] >= PATCHES_MIN_CHANNELS)
  if not (strided or stem) or _direct_flops(lhs.shape, rhs.shape,
                                             strides) < MIN_FLOPS:
    return None
  n, h, w, _ = lhs.shape
  per_image = -(-h // s) * -(-w // s) * k * k * c_in
  return chunk_size(n, per_image, PATCHES_CHUNK_VALUES)


def taps_are_faster(lhs, rhs, strides, lhs_dilation, rhs_dilation,
                    dimension_numbers, feature_group_count,
                    formulations=FORMULATIONS) -> bool:
  """Whether the taps are among `formulations` and this convolution is of a
  kind whose kernel gradient they compute faster on this backend (see the
  module docstring)."""
  if 'taps' not in formulations or not _plain_nhwc_cpu(
      lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
      feature_group_count):
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
