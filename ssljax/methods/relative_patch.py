"""Context prediction: relative patch location (Doersch, Gupta & Efros, ICCV
2015).

From a 3x3 grid of patches the network sees the centre patch and one of its
eight neighbours, encodes both with the shared encoder and classifies the
neighbour's position (8-way) from the two concatenated features (fig. 2-3).
Against the shortcuts the paper names (sec. 3.1): patches are `gap` pixels
apart and jittered by up to `jitter` pixels (no continuing edges or lines),
and colour dropping replaces two channels of each patch by noise (no
chromatic aberration).
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import augment
from ssljax import ranges
from ssljax.methods import common

# The eight neighbours of the centre cell (1, 1), in row-major order; label k
# is the cell NEIGHBOURS[k] of the 3x3 grid (grid index 3r + c).
NEIGHBOURS = (0, 1, 2, 3, 5, 6, 7, 8)
CENTRE = 4


def default_config() -> ml_collections.ConfigDict:
  """For 32x32 images: 8-pixel patches, a 3-pixel gap and 2 pixels of jitter
  (3*8 + 2*3 + 2 = 32: the largest grid a 32x32 image holds with a gap), so
  neighbours are 1-5 pixels apart; colour dropping on every patch, as the
  paper; patches upsampled to `input_size` for the encoder."""
  return ml_collections.ConfigDict(dict(
      name='relative_patch', patch_size=8, gap=3, jitter=2, input_size=16,
      colour_drop_prob=1.0))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {
    'patch_size': ranges.AT_LEAST_1, 'gap': ranges.AT_LEAST_0,
    'jitter': ranges.AT_LEAST_0, 'input_size': ranges.AT_LEAST_1,
    'colour_drop_prob': ranges.PROBABILITY}

# What each setting of default_config() means (--show_config).
HELP = {
    'patch_size': 'side of each patch, in pixels',
    'gap': 'pixels between the centre patch and its neighbour',
    'jitter': 'pixels a patch may shift at random',
    'input_size': 'side the patches are resized to for the encoder',
    'colour_drop_prob': 'probability that a patch keeps one colour channel '
                        'only',
}


def sample_pairs(key: jax.Array, num_images: int, cfg, image_size: int):
  """(centre corners [N, 2], neighbour corners [N, 2], labels [N])."""
  k_grid, k_label = jax.random.split(key)
  corners = augment.grid_corners(k_grid, num_images, cfg.patch_size, cfg.gap,
                                 cfg.jitter, image_size)
  labels = jax.random.randint(k_label, (num_images,), 0, len(NEIGHBOURS))
  neighbour = jnp.take_along_axis(
      corners, jnp.asarray(NEIGHBOURS)[labels][:, None, None], axis=1)[:, 0]
  return corners[:, CENTRE], neighbour, labels


def make(config: ml_collections.ConfigDict) -> common.Method:
  cfg = config.method

  def views(key, images):
    """[2N, S, S, 3]: the centre patches, then the neighbours (two blocks)."""
    k_flip, k_pairs, k_drop = jax.random.split(key, 3)
    x = augment.random_flip(k_flip, images)
    centre, neighbour, labels = sample_pairs(k_pairs, x.shape[0], cfg,
                                             x.shape[1])
    patches = augment.crop_patches(x, jnp.stack([centre, neighbour], 1),
                                   cfg.patch_size)  # [N, 2, P, P, 3]
    return augment.patch_blocks(k_drop, patches, cfg.colour_drop_prob,
                                cfg.input_size), {'labels': labels}

  def loss(outputs, state):
    value, terms = common.classification_loss(outputs, len(NEIGHBOURS),
                                              'relative_patch')
    return value, terms, state

  return common.Method(loss=loss, views=views, outputs=common.logits_output,
                       head_groups=2)
