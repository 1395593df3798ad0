"""The linear probe on a richer readout: several encoder stages, each
average-pooled over a grid of image regions, side by side.

The standard protocol (`linear_probe`) reads the last stage pooled over the
whole image, which for the small encoders of the CPU presets is 128 numbers.
Coates, Lee & Ng (2011) pooled their features over the four quadrants of
the image instead, and their k-means pipeline, the baseline the CPU recipes
are measured against, reads 6,400 numbers that way. This evaluator gives a
trained encoder the same kind of readout, so that the two are compared
like for like; its accuracy is reported beside the standard one, never
instead of it, together with its feature dimension. The probe itself is
`linear_probe`'s, L2 chosen on the same held-out part of the train split.
"""
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from ssljax import evaluators
from ssljax import ranges
from ssljax.errors import InputError
from ssljax.evaluators import linear_probe


def region_means(x: jax.Array, grid: int) -> jax.Array:
  """[N, H, W, C] -> [N, grid * grid * C]: the mean of x over each cell of a
  grid x grid partition of its H x W positions (cells differ by at most one
  row or column where grid does not divide H or W); grid 2 gives Coates et
  al.'s quadrants."""
  height, width = x.shape[1:3]
  if min(height, width) < grid:
    raise InputError(
        f'multiscale_probe: a {height}x{width} stage map cannot be split into '
        f'a {grid}x{grid} grid; lower evals.multiscale_probe.grid or drop '
        'that stage from evals.multiscale_probe.stages.')
  # Position p of n falls in cell floor(p * grid / n): edges ceil(i n / grid).
  rows = [-(-i * height // grid) for i in range(grid + 1)]
  cols = [-(-j * width // grid) for j in range(grid + 1)]
  return jnp.concatenate(
      [x[:, rows[i]:rows[i + 1], cols[j]:cols[j + 1]].mean(axis=(1, 2))
       for i in range(grid) for j in range(grid)], axis=1)


@dataclasses.dataclass(frozen=True)
class RegionPooling:
  """The readout: `region_means` of each stage in `stages` (1-based, as
  ResNet's conv2_x..conv5_x), concatenated. Frozen, hence hashable: it is
  a static argument of the jitted feature extraction."""
  stages: tuple[int, ...]
  grid: int

  def __call__(self, maps: dict) -> jax.Array:
    missing = [s for s in self.stages if f'stage{s}' not in maps]
    if missing:
      raise InputError(
          f'multiscale_probe: the encoder has no stage {missing}; its stages '
          f'are {sorted(int(k[5:]) for k in maps)} '
          '(evals.multiscale_probe.stages).')
    return jnp.concatenate([region_means(maps[f'stage{s}'], self.grid)
                            for s in self.stages], axis=1)


def default_config() -> ml_collections.ConfigDict:
  """Every stage over a 4x4 grid: 3,840 numbers for the `cpu` model
  (widths 16-128), against 6,400 for Coates et al.'s k-means features. Of
  eight readouts it scored best on the validation split carved from train
  (experiments/choose_readout.py; experiments/results/cpu_recipes.md);
  the probe's own settings are `linear_probe`'s defaults."""
  config = linear_probe.default_config()
  config.stages = (1, 2, 3, 4)
  config.grid = 4
  return config


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {**linear_probe.RANGES, 'stages': ranges.AT_LEAST_1,
          'grid': ranges.AT_LEAST_1}

# What each setting of default_config() means (--show_config).
HELP = {**linear_probe.HELP,
    'stages': "the encoder's stages whose maps are read",
    'grid': 'each map is average-pooled over a grid x grid layout',
}


def make(eval_config: ml_collections.ConfigDict,
         config: ml_collections.ConfigDict) -> evaluators.Evaluator:
  if not eval_config.stages:
    raise InputError('evals.multiscale_probe.stages is empty; name at least '
                     'one encoder stage, e.g. (1, 2, 3, 4).')
  readout = RegionPooling(tuple(eval_config.stages), eval_config.grid)

  def run(features: evaluators.Features) -> dict:
    train, test = (features.encode(images, readout)
                   for images in (features.train_images, features.test_images))
    result = linear_probe.configured_probe(
        eval_config, config.seed, train, features.train_labels, test,
        features.test_labels)
    result['feature_dim'] = int(train.shape[1])
    return result
  return evaluators.Evaluator(run=run, summary={
      'multiscale_probe_accuracy': 'test_accuracy',
      'multiscale_feature_dim': 'feature_dim'})
