"""Collapse diagnostics: small pure functions of a batch of representations.

Collapse is every image mapped to one vector (complete collapse) or into a
low-dimensional subspace (dimensional collapse). These measurements see it
without labels, so the training loop watches them while it trains and
`python -m ssljax.evaluate` reports them for any checkpoint:

  per-dimension std     of z and of z / |z| (min and mean over dimensions);
                        0 under complete collapse, and 1 / sqrt(D) for the
                        normalised rows of a perfectly spread embedding
                        (Chen & He 2021, sec. 4.1);
  RankMe                exp(entropy of the normalised singular values) of the
                        [N, D] matrix (Garrido et al. 2023, eq. 1): between 1
                        (rank one) and min(N, D) (a flat spectrum);
  alignment, uniformity of L2-normalised representations of two views of
                        the same images (Wang & Isola 2020, eq. 4 and 5).

`warnings` turns them into collapse warnings against documented thresholds
(`default_config`).
"""
import jax
import jax.numpy as jnp
import ml_collections


def default_config() -> ml_collections.ConfigDict:
  """How the training loop watches for collapse, and when it warns.

  num_images: held-out (test-split) images the diagnostics see at every log,
    fixed for the whole run; RankMe cannot exceed this.
  min_std_fraction: warn when the mean per-dimension std of the L2-normalised
    rows falls below this fraction of 1 / sqrt(D), the value of a perfectly
    spread embedding. Healthy runs of every joint-embedding method stay near
    1 / sqrt(D) (README, "Collapse diagnostics"), a collapsing one heads to 0.
  min_rank_fraction: warn when RankMe falls below this fraction of min(N,
    D), the largest value it can take.
  """
  return ml_collections.ConfigDict(dict(
      num_images=256, min_std_fraction=0.2, min_rank_fraction=0.05))


def singular_values(x: jax.Array) -> jax.Array:
  """The singular values of [N, D] x, largest first (not centred, as in
  RankMe)."""
  return jnp.linalg.svd(x.astype(jnp.float32), compute_uv=False)


def rankme(sigma: jax.Array, eps: float = 1e-7) -> jax.Array:
  """exp(-sum_k p_k log p_k), p_k = sigma_k / |sigma|_1 + eps (RankMe,
  Garrido et al. 2023, eq. 1), from the singular values `sigma`."""
  p = sigma / jnp.maximum(jnp.sum(sigma), 1e-30) + eps
  return jnp.exp(-jnp.sum(p * jnp.log(p)))


# The smallest norm `l2_normalize` divides by where a zero row must stay zero.
ZERO_SAFE = 1e-12


def l2_normalize(x: jax.Array, eps: float = 0.0) -> jax.Array:
  """Rows scaled to unit Euclidean norm. With eps > 0 (ZERO_SAFE) a norm
  below eps is raised to it, so that a zero row stays zero: the diagnostics
  and evaluators measure collapsed representations too. The losses use
  eps = 0, their papers' formula (`methods.common` imports this one)."""
  norm = jnp.linalg.norm(x, axis=1, keepdims=True)
  return x / (jnp.maximum(norm, eps) if eps else norm)


def alignment(x: jax.Array, y: jax.Array, alpha: float = 2.0) -> jax.Array:
  """E |f(x_i) - f(y_i)|^alpha over positive pairs, f L2-normalised (Wang &
  Isola 2020, eq. 4): 0 when both views map to the same point."""
  diff = l2_normalize(x, ZERO_SAFE) - l2_normalize(y, ZERO_SAFE)
  return jnp.mean(jnp.linalg.norm(diff, axis=1) ** alpha)


def uniformity(x: jax.Array, t: float = 2.0) -> jax.Array:
  """log E exp(-t |f(x_i) - f(x_j)|^2) over distinct pairs i < j, f
  L2-normalised (Wang & Isola 2020, eq. 5): 0 under complete collapse, more
  negative the more uniformly the points cover the sphere."""
  f = l2_normalize(x, ZERO_SAFE)
  sq_dist = jnp.maximum(2.0 - 2.0 * f @ f.T, 0.0)
  n = x.shape[0]
  pairs = jnp.triu(jnp.ones((n, n), bool), k=1)
  kernel = jnp.where(pairs, jnp.exp(-t * sq_dist), 0.0)
  return jnp.log(jnp.sum(kernel) / jnp.sum(pairs))


def spread(x: jax.Array, prefix: str) -> dict[str, jax.Array]:
  """The width of x [N, D], the per-dimension std (min and mean) of x and of
  its normalised rows, the singular values and RankMe of x, named
  `<prefix>_<measure>`."""
  sigma = singular_values(x)
  std = jnp.std(x, axis=0)
  normalized_std = jnp.std(l2_normalize(x, ZERO_SAFE), axis=0)
  return {f'{prefix}_dim': jnp.asarray(x.shape[1]),
          f'{prefix}_std_min': jnp.min(std),
          f'{prefix}_std_mean': jnp.mean(std),
          f'{prefix}_normalized_std_min': jnp.min(normalized_std),
          f'{prefix}_normalized_std_mean': jnp.mean(normalized_std),
          f'{prefix}_rankme': rankme(sigma),
          f'{prefix}_singular_values': sigma}


def matrix_summary(c: jax.Array, prefix: str, top: int = 5
                   ) -> dict[str, jax.Array]:
  """A symmetric positive semi-definite matrix (TiCo's running covariance C)
  in numbers: its trace, its `top` largest eigenvalues and its effective rank
  (RankMe of its eigenvalues), named `<prefix>_<measure>`."""
  eigenvalues = jnp.clip(jnp.linalg.eigvalsh(c)[::-1], 0.0)
  summary = {f'{prefix}_trace': jnp.trace(c),
             f'{prefix}_effective_rank': rankme(eigenvalues),
             f'{prefix}_eigenvalues': eigenvalues}
  for k in range(min(top, c.shape[0])):
    summary[f'{prefix}_eigenvalue_{k}'] = eigenvalues[k]
  return summary


def warnings(measures: dict, config: ml_collections.ConfigDict
             ) -> dict[str, str]:
  """{measure: why it signals collapse} for every `<prefix>_rankme` and
  `<prefix>_normalized_std_mean` in `measures` (numbers, with the matching
  `<prefix>_singular_values`) that falls below its threshold; {} when
  healthy."""
  found = {}
  for key, value in measures.items():
    if key.endswith('_rankme'):
      prefix = key[:-len('_rankme')]
      most = len(measures[f'{prefix}_singular_values'])  # min(N, D).
      limit = config.min_rank_fraction * most
      if value < limit:
        found[key] = (f'{key} = {value:.2f} is below {limit:.2f} '
                      f'({config.min_rank_fraction} of its largest possible '
                      f'value {most}): the {prefix} spans few directions')
    elif key.endswith('_normalized_std_mean'):
      prefix = key[:-len('_normalized_std_mean')]
      dim = measures[f'{prefix}_dim']
      limit = config.min_std_fraction / dim ** 0.5
      if value < limit:
        found[key] = (f'{key} = {value:.2g} is below {limit:.2g} '
                      f'({config.min_std_fraction} / sqrt({dim})): the '
                      f'{prefix} maps images close to one point')
  return found
