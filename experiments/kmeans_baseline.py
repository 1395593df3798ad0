"""The CPU baseline an SSL recipe must beat: single-layer k-means features,
after Coates, Lee & Ng, "An Analysis of Single-Layer Networks in
Unsupervised Feature Learning" (AISTATS 2011), scored with ssljax's own
linear probe (its L2 chosen on a held-out part of the train split, as for
every other number).

  TFDS_DATA_DIR=../shared/tensorflow_datasets python experiments/kmeans_baseline.py \
      [--num_centroids=1600] [--score_on=validation] [--json_out=FILE]

From the paper: random 6x6 patches of the train images, each brightness-
and contrast-normalised, ZCA-whitened (epsilon 0.1), clustered by k-means
(K centroids, 10 iterations); an image's features are the "triangle"
activations f_k(x) = max(0, mean_j(z_j) - z_k), z_k = ||x - c_k||, of every
6x6 patch at stride 1, summed over the image's four quadrants: 4K numbers.
The paper reports 0.779 with K = 1600 and an L2-SVM. --score_on=validation
scores on the fixed validation split carved from train (ssljax.data), for
choosing K; the test split is then not read.
"""
import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax import data
from ssljax.evaluators import linear_probe
from ssljax.workdir import provenance

FLAGS = flags.FLAGS

# The paper's regularisers: of the patch normalisation (for pixel values
# 0-255) and of the whitening.
NORMALIZE_EPSILON = 10.0
WHITEN_EPSILON = 0.1


def normalize(patches: jax.Array) -> jax.Array:
  """Each patch (a row, pixel values 0-255) minus its mean, over its
  standard deviation: (x - mean) / sqrt(var + 10)."""
  mean = patches.mean(axis=-1, keepdims=True)
  var = patches.var(axis=-1, keepdims=True)
  return (patches - mean) / jnp.sqrt(var + NORMALIZE_EPSILON)


def zca(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, matrix) of ZCA whitening fitted on normalised patches [N, D]:
  x -> (x - mean) @ V (D + 0.1)^(-1/2) V^T."""
  mean = patches.mean(axis=0)
  eigenvalues, eigenvectors = np.linalg.eigh(np.cov(patches - mean,
                                                    rowvar=False))
  return mean, (eigenvectors / np.sqrt(eigenvalues + WHITEN_EPSILON)
                ) @ eigenvectors.T


@jax.jit
def _kmeans_step(centroids, x):
  """One iteration of k-means: each point to its nearest centroid (by
  x.c - ||c||^2 / 2), each centroid to the mean of its points; a centroid
  without points stays."""
  nearest = jnp.argmax(x @ centroids.T - 0.5 * jnp.sum(centroids**2, 1),
                       axis=1)
  one_hot = jax.nn.one_hot(nearest, len(centroids), dtype=x.dtype)
  counts = one_hot.sum(axis=0)[:, None]
  sums = one_hot.T @ x
  return jnp.where(counts > 0, sums / jnp.maximum(counts, 1), centroids)


def kmeans(x: np.ndarray, k: int, iterations: int, seed: int) -> np.ndarray:
  """K centroids of the rows of `x` from centroids drawn N(0, 0.1^2)."""
  centroids = 0.1 * np.random.default_rng(seed).standard_normal(
      (k, x.shape[1])).astype(np.float32)
  x = jnp.asarray(x)
  for _ in range(iterations):
    centroids = _kmeans_step(centroids, x)
  return np.asarray(centroids)


def triangle(x: jax.Array, centroids: jax.Array) -> jax.Array:
  """max(0, mean_j(z_j) - z_k), z_k = ||x - c_k||, of each row of x."""
  squared = (jnp.sum(x**2, axis=-1, keepdims=True) - 2 * x @ centroids.T
             + jnp.sum(centroids**2, axis=-1))
  z = jnp.sqrt(jnp.maximum(squared, 0.0))
  return jnp.maximum(z.mean(axis=-1, keepdims=True) - z, 0.0)


def all_patches(images: jax.Array, size: int) -> jax.Array:
  """[B, P, P, size*size*3] of uint8 images [B, H, W, 3]: every patch at
  stride 1 (P = H - size + 1), in (row, column, channel) order."""
  patches = jax.lax.conv_general_dilated_patches(
      images.astype(jnp.float32), (size, size), (1, 1), 'VALID',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  # conv_general_dilated_patches orders a patch (channel, row, column).
  b, p, q, _ = patches.shape
  return patches.reshape(b, p, q, 3, size, size).transpose(
      0, 1, 2, 4, 5, 3).reshape(b, p, q, size * size * 3)


@jax.jit
def pooled_features(images, mean, whiten, centroids):
  """[B, 4K]: the triangle activations of every patch of each image, summed
  over its four quadrants."""
  size = int(np.sqrt(mean.shape[0] // 3))
  x = (normalize(all_patches(images, size)) - mean) @ whiten
  f = triangle(x, centroids)  # [B, P, P, K]
  half = f.shape[1] // 2
  quadrants = [f[:, :half, :half], f[:, :half, half:],
               f[:, half:, :half], f[:, half:, half:]]
  return jnp.concatenate([q.sum(axis=(1, 2)) for q in quadrants], axis=-1)


def random_patches(images: np.ndarray, count: int, size: int,
                   seed: int) -> np.ndarray:
  """[count, size*size*3] float32 patches at random places of random
  images, in `all_patches`' order."""
  rng = np.random.default_rng(seed)
  which = rng.integers(0, len(images), count)
  rows = rng.integers(0, images.shape[1] - size + 1, count)
  columns = rng.integers(0, images.shape[2] - size + 1, count)
  offsets = np.arange(size)
  picked = images[which[:, None, None], rows[:, None, None] + offsets[
      None, :, None], columns[:, None, None] + offsets[None, None, :]]
  return picked.reshape(count, -1).astype(np.float32)


def features_of(images: np.ndarray, mean, whiten, centroids,
                batch: int) -> np.ndarray:
  parts = [np.asarray(pooled_features(jnp.asarray(images[i:i + batch]),
                                      mean, whiten, centroids))
           for i in range(0, len(images), batch)]
  return np.concatenate(parts)


def main(argv):
  del argv
  start = time.time()
  config = ml_collections.ConfigDict({'data': {
      'name': 'cifar10', 'data_dir': '', 'download': False,
      'score_on': FLAGS.score_on, 'validation_size': 5000}})
  splits = data.load_splits(config)
  (train, train_labels), (scored, scored_labels) = (splits['train'],
                                                    splits['test'])
  patches = np.asarray(normalize(jnp.asarray(random_patches(
      train, FLAGS.num_patches, FLAGS.patch, FLAGS.seed))))
  mean, whiten = zca(patches)
  centroids = kmeans((patches - mean) @ whiten, FLAGS.num_centroids,
                     FLAGS.iterations, FLAGS.seed)
  fitted = time.time()
  args = (jnp.asarray(mean, jnp.float32), jnp.asarray(whiten, jnp.float32),
          jnp.asarray(centroids))
  train_features = features_of(train, *args, FLAGS.batch)
  scored_features = features_of(scored, *args, FLAGS.batch)
  extracted = time.time()
  probe = linear_probe.configured_probe(
      linear_probe.default_config(), FLAGS.seed, train_features, train_labels,
      scored_features, scored_labels)
  results = {
      'score_on': FLAGS.score_on,
      'accuracy': probe['test_accuracy'],
      'feature_dim': int(train_features.shape[1]),
      'best_l2': probe['best_l2'], 'l2_grid': probe['l2_grid'],
      'holdout_accuracies': probe['holdout_accuracies'],
      'num_centroids': FLAGS.num_centroids, 'num_patches': FLAGS.num_patches,
      'patch': FLAGS.patch, 'iterations': FLAGS.iterations,
      'seed': FLAGS.seed, 'num_scored': int(len(scored)),
      'seconds': {'kmeans': fitted - start, 'features': extracted - fitted,
                  'probe': probe['seconds'],
                  'total': time.time() - start},
      'provenance': provenance.record(),  # Its host, as every run's.
  }
  print(json.dumps(results, indent=1))
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump(results, f, indent=1)


def define_flags():
  """The command's flags, defined only when it runs: the tests import the
  functions beside other modules' flags."""
  flags.DEFINE_integer('num_centroids', 1600, 'K: centroids of k-means.')
  flags.DEFINE_integer('num_patches', 400_000, 'Random patches k-means sees.')
  flags.DEFINE_integer('patch', 6, 'Side of a patch (the receptive field).')
  flags.DEFINE_integer('iterations', 10, 'Iterations of k-means.')
  flags.DEFINE_integer('seed', 0, 'Seeds the patches, the centroids and the '
                       "probe's held-out part.")
  flags.DEFINE_enum('score_on', 'test', data.SCORED_SPLITS, 'What the probe '
                    'is scored on: the test split, or the validation split '
                    'carved from train (for choosing).')
  flags.DEFINE_integer('batch', 100, 'Images per call of the feature map.')
  flags.DEFINE_string('json_out', None, 'Also write the results here.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
