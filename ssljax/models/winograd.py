"""3x3 stride-1 convolutions by Winograd minimal filtering (Lavin & Gray
2016, "Fast Algorithms for Convolutional Neural Networks").

F(m x m, 3 x 3) computes each m x m output tile from an (m+2) x (m+2) input
tile d and the 3 x 3 filter g as

    Y = A^T [ (G g G^T) * (B^T d B) ] A                          (Lavin eq. 8)

where * is elementwise. Over channels, the elementwise product becomes
(m+2)^2 independent matrix products of (tiles x C_in) by (C_in x C_out):
the operation XLA:CPU runs fastest, with (m+2)^2 / (9 m^2) of the direct
convolution's multiplies (0.44 for m = 2, 0.25 for m = 4). The gradients are
again transforms and matrix products:

    dU = sum over tiles of V^T dM,   dM = A dY A^T,   d g = G^T dU G

(the kernel gradient), and the input gradient is the same convolution of dY
with the filter flipped and its channels swapped. Each transform is written
as additions of strided slices (a tile starts every m pixels), no dense
einsum; and each runs on a chunk of the batch at a time, so that the
transformed tiles, (m+2)^2 / m^2 times the input, stay in cache instead of
streaming through memory (on this CPU that made the forward 3.4x faster,
experiments/results/performance.md). `models.conv` uses m = 2; m = 4 is
here to be measured against it (its gradients stray further from float64).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

# Transforms for the interpolation points 0, 1, -1 (m = 2) and 0, 1, -1, 2,
# -2 (m = 4), each with the point at infinity (Lavin & Gray, section 4).
_TRANSFORMS = {
    2: dict(
        BT=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        G=[[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]],
        AT=[[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: dict(
        BT=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        G=[[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
           [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        AT=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
            [0, 1, -1, 8, -8, 1]]),
}


def _combine(terms, coefficients):
  """sum_u coefficients[u] * terms(u), skipping zeros, without multiplying by
  +-1: the transforms are additions."""
  total = None
  for u, c in enumerate(coefficients):
    if c == 0:
      continue
    term = terms(u)
    if c == -1:
      total = -term if total is None else total - term
      continue
    if c != 1:
      term = term * jnp.asarray(c, term.dtype)
    total = term if total is None else total + term
  return total


def _tiles(size, m):
  return -(-size // m)


def input_transform(x, m):
  """V = B^T d B for every (m+2) x (m+2) tile of the SAME-padded input
  x [N, H, W, C], tiles starting every m pixels: [(m+2)^2, N * Th * Tw, C]."""
  n, h, w, c = x.shape
  bt = _TRANSFORMS[m]['BT']
  th, tw = _tiles(h, m), _tiles(w, m)
  # Tile (t, s) starts at padded pixel (m t, m s); its row u is a strided
  # slice of the padded input.
  padded = jnp.pad(x, ((0, 0), (1, m * th + 1 - h), (1, m * tw + 1 - w),
                       (0, 0)))
  rows = [_combine(lambda u: padded[:, u:u + m * (th - 1) + 1:m], b)
          for b in bt]  # Each [N, Th, W + 2, C].
  v = [_combine(lambda u, r=r: r[:, :, u:u + m * (tw - 1) + 1:m], b)
       for r in rows for b in bt]  # Each [N, Th, Tw, C].
  return jnp.stack(v).reshape(len(v), n * th * tw, c)


def output_transform(mm, shape, m):
  """Y = A^T M A for every tile: M [(m+2)^2, N * Th * Tw, K] -> [N, H, W, K]
  of `shape` (N, H, W)."""
  n, h, w = shape
  at = _TRANSFORMS[m]['AT']
  a, th, tw = m + 2, _tiles(h, m), _tiles(w, m)
  mm = mm.reshape(a, a, n, th, tw, -1)
  cols = [_combine(lambda j: mm[:, j], q) for q in at]  # Each [a, N, Th, Tw, K].
  y = jnp.stack([jnp.stack([_combine(lambda i, c=c: c[i], p) for c in cols],
                           axis=3) for p in at], axis=2)
  return y.reshape(n, th * m, tw * m, -1)[:, :h, :w]


def output_transform_transposed(dy, m):
  """dM = A dY A^T, the transpose of `output_transform`, for the kernel
  gradient: dY [N, H, W, K] -> [(m+2)^2, N * Th * Tw, K]."""
  n, h, w, k = dy.shape
  at = np.asarray(_TRANSFORMS[m]['AT'])
  th, tw = _tiles(h, m), _tiles(w, m)
  dy = jnp.pad(dy, ((0, 0), (0, th * m - h), (0, tw * m - w), (0, 0)))
  dy = dy.reshape(n, th, m, tw, m, k)
  rows = [_combine(lambda p: dy[:, :, p], col) for col in at.T]
  dm = [_combine(lambda q, r=r: r[:, :, :, q], col) for r in rows
        for col in at.T]  # Each [N, Th, Tw, K].
  return jnp.stack(dm).reshape(len(dm), n * th * tw, k)


def filter_transform(kernel, m):
  """U = G g G^T: HWIO kernel [3, 3, C, K] -> [(m+2)^2, C, K]."""
  g = jnp.asarray(_TRANSFORMS[m]['G'], kernel.dtype)
  u = jnp.einsum('iu,jv,uvck->ijck', g, g, kernel)
  return u.reshape(-1, *kernel.shape[2:])


def filter_transform_transposed(du, m):
  """d g = G^T dU G: [(m+2)^2, C, K] -> the HWIO kernel gradient."""
  g = jnp.asarray(_TRANSFORMS[m]['G'], du.dtype)
  du = du.reshape(m + 2, m + 2, *du.shape[1:])
  return jnp.einsum('iu,jv,ijck->uvck', g, g, du)


def conv(x, kernel, m, chunk, precision=None):
  """The 3x3 stride-1 SAME convolution of x [N, H, W, C] (HWIO kernel),
  `chunk` images at a time: each chunk's transforms and products then stay
  in cache, where the whole batch's would stream through memory (V holds
  (m+2)^2 / m^2 times the input)."""
  u = filter_transform(kernel, m)

  def one_chunk(xc):
    v = input_transform(xc, m)
    mm = jnp.einsum('tpc,tck->tpk', v, u, precision=precision)
    return output_transform(mm, xc.shape[:3], m)
  n, h, w, _ = x.shape
  y = jax.lax.map(one_chunk, x.reshape(n // chunk, chunk, *x.shape[1:]))
  return y.reshape(n, h, w, -1)


def input_grad(dy, kernel, m, chunk, precision=None):
  """d loss / d x of `conv`: the same convolution of dy with the filter
  rotated by 180 degrees and its channels swapped."""
  return conv(dy, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), m, chunk,
              precision)


def kernel_grad(x, dy, m, chunk, precision=None):
  """d loss / d kernel of `conv`: G^T (sum over tiles of V^T dM) G, the sum
  accumulated chunk by chunk."""
  n = x.shape[0]

  def add_chunk(du, chunk_pair):
    xc, dyc = chunk_pair
    return du + jnp.einsum('tpc,tpk->tck', input_transform(xc, m),
                           output_transform_transposed(dyc, m),
                           precision=precision), None
  du = jnp.zeros(((m + 2)**2, x.shape[-1], dy.shape[-1]), x.dtype)
  du, _ = jax.lax.scan(add_chunk, du, (
      x.reshape(n // chunk, chunk, *x.shape[1:]),
      dy.reshape(n // chunk, chunk, *dy.shape[1:])))
  return filter_transform_transposed(du, m)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv3x3(x, kernel, m, chunk, precision=None):
  """`conv` whose gradients are Winograd's too (`input_grad`, `kernel_grad`)
  rather than autodiff's transpose of the chunked loop, which would store
  every chunk's transformed input for the backward pass."""
  return conv(x, kernel, m, chunk, precision)


def _conv3x3_fwd(x, kernel, m, chunk, precision):
  return conv(x, kernel, m, chunk, precision), (x, kernel)


def _conv3x3_bwd(m, chunk, precision, residuals, dy):
  x, kernel = residuals
  return (input_grad(dy, kernel, m, chunk, precision),
          kernel_grad(x, dy, m, chunk, precision))


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)
