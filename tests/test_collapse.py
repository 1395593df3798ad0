"""Collapse diagnostics against float64 NumPy written from the papers'
formulas, and the warnings on constant, rank-one and healthy features."""
import numpy as np
import pytest

from ssljax import collapse


def _rankme_reference(x):
  """Garrido et al. 2023, eq. 1: p_k = sigma_k / |sigma|_1 + eps, RankMe =
  exp(-sum p_k log p_k)."""
  sigma = np.linalg.svd(np.asarray(x, np.float64), compute_uv=False)
  p = sigma / sigma.sum() + 1e-7
  return np.exp(-np.sum(p * np.log(p)))


def _normalized(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _alignment_reference(x, y):
  """Wang & Isola 2020, eq. 4 with alpha = 2."""
  return np.mean(np.sum((_normalized(x) - _normalized(y)) ** 2, axis=1))


def _uniformity_reference(x):
  """Wang & Isola 2020, eq. 5 with t = 2, over pairs i < j."""
  f = _normalized(x)
  values = [np.exp(-2 * np.sum((f[i] - f[j]) ** 2))
            for i in range(len(f)) for j in range(i + 1, len(f))]
  return np.log(np.mean(values))


def test_rankme_is_the_papers_formula_near_d_when_whitened_and_1_at_rank_one():
  rng = np.random.default_rng(0)
  white = rng.standard_normal((4000, 64))
  assert collapse.rankme(collapse.singular_values(white)) == pytest.approx(
      _rankme_reference(white), rel=1e-4)
  assert collapse.rankme(collapse.singular_values(white)) > 0.95 * 64
  rank_one = rng.standard_normal((500, 1)) @ rng.standard_normal((1, 64))
  assert float(collapse.rankme(collapse.singular_values(rank_one))) < 1.01
  mixed = rng.standard_normal((300, 16)) * np.geomspace(1, 1e-3, 16)
  assert collapse.rankme(collapse.singular_values(mixed)) == pytest.approx(
      _rankme_reference(mixed), rel=1e-4)


def test_alignment_and_uniformity_match_numpy():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((40, 8))
  y = x + 0.3 * rng.standard_normal((40, 8))
  assert collapse.alignment(x, y) == pytest.approx(
      _alignment_reference(x, y), rel=1e-5)
  assert collapse.uniformity(x) == pytest.approx(_uniformity_reference(x),
                                                 rel=1e-5)
  # Complete collapse: aligned perfectly, and not uniform at all.
  same = np.ones((10, 8))
  assert float(collapse.alignment(same, same)) == pytest.approx(0, abs=1e-6)
  assert float(collapse.uniformity(same)) == pytest.approx(0, abs=1e-5)


def test_spread_reports_dimension_stds_and_singular_values():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((50, 6)) * np.arange(1, 7)
  measures = collapse.spread(x, 'feature')
  assert int(measures['feature_dim']) == 6
  np.testing.assert_allclose(measures['feature_std_min'], x.std(0).min(),
                             rtol=1e-5)
  np.testing.assert_allclose(measures['feature_std_mean'], x.std(0).mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(measures['feature_normalized_std_mean'],
                             _normalized(x).std(0).mean(), rtol=1e-5)
  np.testing.assert_allclose(measures['feature_singular_values'],
                             np.linalg.svd(x, compute_uv=False), rtol=1e-4)


def test_matrix_summary_of_a_covariance():
  rng = np.random.default_rng(3)
  z = rng.standard_normal((100, 8)) * np.geomspace(3, 0.1, 8)
  c = z.T @ z / len(z)
  summary = collapse.matrix_summary(c, 'c', top=3)
  eigenvalues = np.sort(np.linalg.eigvalsh(c))[::-1]
  assert float(summary['c_trace']) == pytest.approx(np.trace(c), rel=1e-5)
  for k in range(3):
    assert float(summary[f'c_eigenvalue_{k}']) == pytest.approx(
        eigenvalues[k], rel=1e-4)
  assert 'c_eigenvalue_3' not in summary
  p = eigenvalues / eigenvalues.sum() + 1e-7
  assert float(summary['c_effective_rank']) == pytest.approx(
      np.exp(-np.sum(p * np.log(p))), rel=1e-4)


def _warnings(x):
  measures = {k: np.asarray(v) for k, v in collapse.spread(x, 'z').items()}
  measures = {k: v if v.ndim else v.item() for k, v in measures.items()}
  return collapse.warnings(measures, collapse.default_config())


def test_warning_fires_for_constant_and_rank_one_features_only():
  rng = np.random.default_rng(4)
  constant = np.ones((256, 64)) + 1e-6 * rng.standard_normal((256, 64))
  assert set(_warnings(constant)) == {'z_rankme', 'z_normalized_std_mean'}
  rank_one = rng.standard_normal((256, 1)) @ rng.standard_normal((1, 64))
  assert 'z_rankme' in _warnings(rank_one)
  assert _warnings(rng.standard_normal((256, 64))) == {}
  # Healthy but anisotropic: a decaying spectrum is no collapse.
  assert _warnings(rng.standard_normal((256, 64))
                   * np.geomspace(1, 0.05, 64)) == {}


def test_a_representation_of_zeros_is_measured_and_the_losses_formula_is_not():
  zeros = np.zeros((8, 4), np.float32)
  measures = collapse.spread(zeros, 'z')
  assert all(np.all(np.isfinite(v)) for v in measures.values())
  assert float(measures['z_normalized_std_mean']) == 0.0
  assert float(collapse.alignment(zeros, zeros)) == 0.0
  # The losses' own formula (eps = 0): a zero row has no direction.
  assert np.all(np.isnan(collapse.l2_normalize(zeros)))
