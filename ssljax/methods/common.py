"""Math and hooks that several methods share.

Kept here, not in one method's file, so that no method imports a sibling for
a helper; each function is small and pure, and the losses that use it cite
their own equations.
"""
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssljax import augment
from ssljax.collapse import l2_normalize  # Shared with the evaluators.
from ssljax.errors import InputError
from ssljax.methods import Method, Outputs


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
  """Row-wise cosine similarity, [N]."""
  return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=1)


def off_diagonal_sum_of_squares(m: jax.Array) -> jax.Array:
  """sum_{i != j} m_ij^2: how far a square matrix is from diagonal."""
  return jnp.sum(m ** 2) - jnp.sum(jnp.diagonal(m) ** 2)


def embedding_spread(z: jax.Array) -> dict[str, jax.Array]:
  """Collapse diagnostics of an embedding [N, D]: the mean per-dimension std
  of z and of its L2-normalised rows. Both are 0 when every image maps to
  the same vector; 1/sqrt(D) is the normalised value of a perfectly spread
  embedding (Chen & He 2021, sec. 4.1)."""
  return {'embedding_std': jnp.mean(jnp.std(z, axis=0)),
          'normalized_embedding_std': jnp.mean(jnp.std(l2_normalize(z),
                                                       axis=0))}


def two_views(augment_config: ml_collections.ConfigDict
              ) -> Callable[[jax.Array, jax.Array], tuple[jax.Array, Outputs]]:
  """The joint-embedding input: both augmented views stacked, [2N, S, S, 3]."""
  def views(key, images):
    return jnp.concatenate(augment.views(key, images, augment_config)), {}
  return views


def view_outputs(z: jax.Array, p: jax.Array | None) -> Outputs:
  """Splits the [2N, D] projections (and predictions) of both views into
  'z1', 'z2' (and 'p1', 'p2'), in float32 for the loss."""
  outputs = dict(zip(('z1', 'z2'), jnp.split(z.astype(jnp.float32), 2)))
  if p is not None:
    outputs.update(zip(('p1', 'p2'), jnp.split(p.astype(jnp.float32), 2)))
  return outputs


def logits_output(z: jax.Array, p: jax.Array | None) -> Outputs:
  """A pretext task's classifier head output, in float32 for the loss."""
  del p  # A classifier head has no predictor.
  return {'logits': z.astype(jnp.float32)}


def joint_embedding(config: ml_collections.ConfigDict, loss, **hooks) -> Method:
  """A method that embeds two augmented views of each image and compares
  them: `config.augment`'s views, outputs 'z1', 'z2' (and 'p1', 'p2'), and
  `loss`'s terms logged with the collapse diagnostics of z1."""
  def loss_and_spread(outputs, state):
    value, terms, state = loss(outputs, state)
    return value, {**terms, **embedding_spread(outputs['z1'])}, state
  return Method(loss=loss_and_spread, views=two_views(config.augment),
                outputs=view_outputs, **hooks)


def predictions(outputs: Outputs, method_name: str
                ) -> tuple[jax.Array, jax.Array]:
  """(p1, p2), or a clear error when the config builds no predictor."""
  if 'p1' not in outputs:
    raise InputError(
        f'{method_name} needs a predictor, but config.model.predictor_widths '
        'is empty; set it, e.g. --config.model.predictor_widths="(512, 2048)" '
        '(hidden, output; the output must equal the projector output width).')
  return outputs['p1'], outputs['p2']


def classification_loss(outputs: Outputs, num_classes: int, method_name: str
                        ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Softmax cross-entropy of a pretext task's head against its labels, and
  the head's accuracy; fails clearly when the head has the wrong width."""
  logits, labels = outputs['logits'], outputs['labels']
  if logits.shape[-1] != num_classes:
    raise InputError(
        f'{method_name} classifies {num_classes} classes, but the head has '
        f'{logits.shape[-1]} outputs; set --config.model.projector_widths so '
        f'that its last width is {num_classes}, e.g. "(512, {num_classes})".')
  loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits,
                                                                  labels))
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return loss, {'cross_entropy': loss, 'pretext_accuracy': accuracy}
