"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016).

The image is cut into a 3x3 grid of tiles, the tiles are shuffled by one of
P fixed permutations, each tile goes through the shared encoder, and the
network classifies which permutation was applied from the 9 concatenated
tile features (the "context-free network", fig. 3). The P permutations are
chosen greedily for a large minimum Hamming distance (sec. 3.2: more
permutations and larger distances make the task harder and the features
better); the set is a deterministic function of its size, so the config
alone fixes it. Against shortcuts: tiles are jittered with gaps
between them (no continuing edges), and colour dropping on a fraction of the
tiles (chromatic aberration).
"""
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax import augment
from ssljax import ranges
from ssljax.errors import InputError
from ssljax.methods import common

NUM_TILES = 9


def default_config() -> ml_collections.ConfigDict:
  """For 32x32 images: 8-pixel tiles with a 2-pixel gap and 2 pixels of
  jitter (3*8 + 2*2 + 2 = 30), upsampled to `input_size`; 100 permutations
  and colour dropping on 30% of the tiles."""
  return ml_collections.ConfigDict(dict(
      name='jigsaw', num_permutations=100, tile_size=8, gap=2, jitter=2,
      input_size=16, colour_drop_prob=0.3))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {
    'num_permutations': ranges.between(2), 'tile_size': ranges.AT_LEAST_1,
    'gap': ranges.AT_LEAST_0, 'jitter': ranges.AT_LEAST_0,
    'input_size': ranges.AT_LEAST_1,
    'colour_drop_prob': ranges.PROBABILITY}

# What each setting of default_config() means (--show_config).
HELP = {
    'num_permutations': 'size of the permutation set the classifier chooses '
                        'from',
    'tile_size': 'side of each of the 3x3 tiles, in pixels',
    'gap': 'pixels between neighbouring tiles',
    'jitter': 'pixels a tile may shift at random',
    'input_size': 'side the tiles are resized to for the encoder',
    'colour_drop_prob': 'probability that a tile keeps one colour channel only',
}


@functools.lru_cache(maxsize=8)
def permutation_set(num: int) -> np.ndarray:
  """[num, 9] permutations of the tiles, greedily spread out: start from the
  identity and repeatedly add the permutation whose smallest Hamming distance
  to those already chosen is largest (the first on ties), as Noroozi &
  Favaro's algorithm does from a random start; deterministic, so a config
  always means the same set."""
  if not 2 <= num <= math.factorial(NUM_TILES):
    raise InputError(
        f'config.method.num_permutations={num} must be between 2 and 9! = '
        f'{math.factorial(NUM_TILES)}; the paper uses 100 to 1000.')
  every = np.array(list(itertools.permutations(range(NUM_TILES))), np.int8)
  # Position k of every permutation in one contiguous row: the distances to
  # one permutation are then 9 contiguous passes over 9! bytes, not a
  # strided pass over 9! rows, so the paper's 1,000 take under a second.
  positions = np.ascontiguousarray(every.T)

  def distances(perm):
    count = np.zeros(len(every), np.uint8)
    for k, tile in enumerate(perm):
      count += positions[k] != tile
    return count

  chosen = [0]
  nearest = distances(every[0])
  for _ in range(num - 1):
    chosen.append(int(np.argmax(nearest)))
    nearest = np.minimum(nearest, distances(every[chosen[-1]]))
  return every[chosen].astype(np.int32)


def min_pairwise_hamming(perms: np.ndarray) -> int:
  """The smallest number of positions in which two of the permutations differ."""
  distance = np.sum(perms[:, None, :] != perms[None, :, :], axis=-1)
  np.fill_diagonal(distance, NUM_TILES + 1)
  return int(distance.min())


def shuffle_tiles(tiles: jax.Array, perms: jax.Array) -> jax.Array:
  """[N, 9, ...] tiles, [N, 9] permutations -> out[n, k] = tiles[n, perms[n, k]]."""
  index = perms.reshape(perms.shape + (1,) * (tiles.ndim - 2))
  return jnp.take_along_axis(tiles, index, axis=1)


def make(config: ml_collections.ConfigDict) -> common.Method:
  cfg = config.method
  # A constant of the config, closed over rather than kept as state.
  permutations = permutation_set(cfg.num_permutations)
  min_hamming = jnp.float32(min_pairwise_hamming(permutations))

  def views(key, images):
    """[9N, S, S, 3]: tile k of every shuffled puzzle in block k; the label
    is the index of the permutation in the set."""
    k_flip, k_grid, k_label, k_drop = jax.random.split(key, 4)
    x = augment.random_flip(k_flip, images)
    corners = augment.grid_corners(k_grid, x.shape[0], cfg.tile_size, cfg.gap,
                                   cfg.jitter, x.shape[1])
    tiles = augment.crop_patches(x, corners, cfg.tile_size)  # [N, 9, T, T, 3]
    labels = jax.random.randint(k_label, (x.shape[0],), 0, len(permutations))
    tiles = shuffle_tiles(tiles, jnp.asarray(permutations)[labels])
    return augment.patch_blocks(k_drop, tiles, cfg.colour_drop_prob,
                                cfg.input_size), {'labels': labels}

  def loss(outputs, state):
    value, terms = common.classification_loss(outputs, len(permutations),
                                              'jigsaw')
    return value, {**terms, 'permutation_min_hamming': min_hamming}, state

  return common.Method(loss=loss, views=views, outputs=common.logits_output,
                       head_groups=NUM_TILES)
