"""The k-means baseline (experiments/kmeans_baseline.py) against the paper's
formulas (Coates, Lee & Ng 2011), in float64 NumPy, on tiny inputs."""
import jax.numpy as jnp
import numpy as np

from experiments import kmeans_baseline as km


def test_patches_are_normalised_and_whitened_as_the_paper_says():
  rng = np.random.default_rng(0)
  patches = rng.uniform(0, 255, (2000, 12)).astype(np.float32)
  normalised = np.asarray(km.normalize(jnp.asarray(patches)), np.float64)
  p = patches.astype(np.float64)
  expected = ((p - p.mean(1, keepdims=True))
              / np.sqrt(p.var(1, keepdims=True) + 10.0))
  np.testing.assert_allclose(normalised, expected, rtol=1e-4, atol=1e-5)
  # ZCA: the whitened covariance's eigenvalues are lambda / (lambda + 0.1),
  # in the data's own eigenvectors (symmetric whitening, no rotation).
  mean, whiten = km.zca(normalised)
  covariance = np.cov(normalised - normalised.mean(0), rowvar=False)
  eigenvalues, vectors = np.linalg.eigh(covariance)
  whitened = np.cov((normalised - mean) @ whiten, rowvar=False)
  np.testing.assert_allclose(
      whitened, (vectors * eigenvalues / (eigenvalues + 0.1)) @ vectors.T,
      atol=1e-8)
  np.testing.assert_allclose(whiten, whiten.T, atol=1e-10)


def test_triangle_activation_is_the_papers_formula():
  rng = np.random.default_rng(1)
  x, centroids = rng.normal(size=(5, 7)), rng.normal(size=(4, 7))
  found = np.asarray(km.triangle(jnp.asarray(x, jnp.float32),
                                 jnp.asarray(centroids, jnp.float32)))
  for i in range(5):
    z = np.array([np.linalg.norm(x[i] - c) for c in centroids])
    np.testing.assert_allclose(found[i], np.maximum(z.mean() - z, 0),
                               rtol=1e-4, atol=1e-5)


def test_every_patch_is_read_in_the_order_k_means_was_fitted_on():
  images = np.random.default_rng(2).integers(0, 256, (2, 8, 8, 3), np.uint8)
  patches = np.asarray(km.all_patches(jnp.asarray(images), 3))
  assert patches.shape == (2, 6, 6, 27)
  for b, i, j in ((0, 0, 0), (1, 2, 5), (0, 5, 3)):
    np.testing.assert_array_equal(
        patches[b, i, j], images[b, i:i + 3, j:j + 3].reshape(-1))
  # random_patches cuts them the same way.
  one = km.random_patches(images, 50, 3, seed=3)
  rows = {tuple(r) for r in patches.reshape(-1, 27).astype(np.float32)}
  assert all(tuple(r) in rows for r in one)


def test_features_sum_each_quadrants_activations():
  rng = np.random.default_rng(4)
  images = rng.integers(0, 256, (3, 8, 8, 3), np.uint8)
  mean = rng.normal(size=27).astype(np.float32) * 0.1
  whiten = np.eye(27, dtype=np.float32)
  centroids = rng.normal(size=(5, 27)).astype(np.float32)
  found = np.asarray(km.pooled_features(jnp.asarray(images), mean, whiten,
                                        centroids))
  assert found.shape == (3, 20)  # 4 quadrants x K.
  patches = np.asarray(km.all_patches(jnp.asarray(images), 3), np.float64)
  x = ((patches - patches.mean(-1, keepdims=True))
       / np.sqrt(patches.var(-1, keepdims=True) + 10.0) - mean)
  z = np.linalg.norm(x[..., None, :] - centroids.astype(np.float64), axis=-1)
  f = np.maximum(z.mean(-1, keepdims=True) - z, 0)  # [3, 6, 6, 5]
  expected = np.concatenate([f[:, :3, :3].sum((1, 2)), f[:, :3, 3:].sum((1, 2)),
                             f[:, 3:, :3].sum((1, 2)), f[:, 3:, 3:].sum((1, 2))],
                            axis=-1)
  np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-4)


def test_a_kmeans_step_moves_each_centroid_to_the_mean_of_its_points():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(300, 4)).astype(np.float32)
  centroids = rng.normal(size=(6, 4)).astype(np.float32)
  centroids[5] = 100.0  # Nearest to no point: it stays.
  found = np.asarray(km._kmeans_step(jnp.asarray(centroids),
                                     jnp.asarray(x)))
  x64, c64 = x.astype(np.float64), centroids.astype(np.float64)
  nearest = np.argmin(((x64[:, None] - c64[None]) ** 2).sum(-1), axis=1)
  for k in range(6):
    mine = x64[nearest == k]
    expected = mine.mean(0) if len(mine) else c64[k]
    np.testing.assert_allclose(found[k], expected, rtol=1e-4, atol=1e-5)
  assert not np.any(nearest == 5)
