"""Counting visual primitives (Noroozi, Pirsiavash & Favaro, ICCV 2017).

phi maps an image to a non-negative vector of "counts" (here: the head on the
encoder features, then a ReLU). Counts are additive: the counts of the
2x-downsampled image D o x equal the sum over the counts of its four tiles
T_1..T_4 o x (all four the same size as D o x). To rule out phi = 0, the
counts of another image y must differ from that sum by a margin c (eq. 5):
  L_feat = || phi(D o x) - sum_i phi(T_i o x) ||^2
  L_diff = max(0, c - || phi(D o y) - sum_i phi(T_i o x) ||^2)
  L = mean over the batch of L_feat + L_diff,
with y the next image of the batch. Squared norms (no square root) and the
ReLU hinge keep gradients finite at zero distance and at the margin.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import augment
from ssljax import ranges
from ssljax.methods import common

NUM_TILES = 4


def default_config() -> ml_collections.ConfigDict:
  """The paper's margin c = 10. On 32x32 images D o x and the tiles are
  16x16, resized to `input_size` for the encoder."""
  return ml_collections.ConfigDict(dict(name='counting', margin=10.0,
                                        input_size=16))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'input_size': ranges.AT_LEAST_1, 'margin': ranges.AT_LEAST_0}

# What each setting of default_config() means (--show_config).
HELP = {
    'input_size': 'side the tiles and the downsampled image are resized to '
                  'for the encoder',
    'margin': 'c, the margin of the contrastive term that keeps counts apart',
}


def downsample_and_tiles(images: jax.Array) -> jax.Array:
  """[N, H, W, C] -> [5, N, H/2, W/2, C]: D o x (2x2 average pooling), then
  the four tiles, row-major."""
  n, h, w, c = images.shape
  down = images.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
  tiles = [images[:, r:r + h // 2, s:s + w // 2]
           for r in (0, h // 2) for s in (0, w // 2)]
  return jnp.stack([down, *tiles])


def counting_loss(counts: jax.Array, margin: float):
  """counts [5N, K] in the block order of `views`: the loss and its terms."""
  phi = counts.reshape(1 + NUM_TILES, -1, counts.shape[-1])
  down, tile_sum = phi[0], jnp.sum(phi[1:], axis=0)
  other = jnp.roll(down, 1, axis=0)  # phi(D o y), y another image.
  feat = jnp.mean(jnp.sum((down - tile_sum) ** 2, axis=-1))
  diff = jnp.mean(jax.nn.relu(margin - jnp.sum((other - tile_sum) ** 2, -1)))
  return feat + diff, {'feature_match': feat, 'contrast': diff}


def count_outputs(z: jax.Array, p: jax.Array | None):
  """The head's output made non-negative: the counts phi."""
  del p  # The counting head has no predictor.
  return {'counts': jax.nn.relu(z.astype(jnp.float32))}


def make(config: ml_collections.ConfigDict) -> common.Method:
  cfg = config.method

  def views(key, images):
    """[5N, S, S, 3]: D o x for every image, then the four tiles."""
    parts = downsample_and_tiles(augment.random_flip(key, images))
    return augment.resize(parts.reshape(-1, *parts.shape[2:]),
                          cfg.input_size), {}

  def loss(outputs, state):
    value, terms = counting_loss(outputs['counts'], cfg.margin)
    return value, terms, state

  return common.Method(loss=loss, views=views, outputs=count_outputs)
