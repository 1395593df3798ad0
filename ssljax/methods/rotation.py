"""RotNet: rotation prediction (Gidaris, Singh & Komodakis, ICLR 2018).

Each image is rotated by 0, 90, 180 and 270 degrees and the network predicts
which: to tell "up" it has to recognise the object and its pose (sec. 2.2).
All four rotations of an image are in the same batch, which the paper found
better than one random rotation per image (sec. 3.1). The classifier is the
model's head on the encoder features; loss = mean cross-entropy (eq. 2).
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import augment
from ssljax.methods import common

NUM_ROTATIONS = 4


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(name='rotation'))


def rotate(images: jax.Array, quarter_turns: int) -> jax.Array:
  """[N, H, W, C] images rotated counter-clockwise by 90 x quarter_turns."""
  return jnp.rot90(images, quarter_turns, axes=(1, 2))


def make(config: ml_collections.ConfigDict) -> common.Method:
  augment_config = config.augment

  def views(key, images):
    """One cropped and flipped view per image, in its four rotations:
    [4N, ...] as four blocks of N; label k for the block rotated k quarter
    turns."""
    (x,) = augment.views(key, images, augment_config, num_views=1)
    x = jnp.concatenate([rotate(x, k) for k in range(NUM_ROTATIONS)])
    labels = jnp.repeat(jnp.arange(NUM_ROTATIONS), images.shape[0])
    return x, {'labels': labels}

  def loss(outputs, state):
    value, terms = common.classification_loss(outputs, NUM_ROTATIONS,
                                              'rotation')
    return value, terms, state

  return common.Method(loss=loss, views=views, outputs=common.logits_output)
