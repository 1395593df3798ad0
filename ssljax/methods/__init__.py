"""Registry of self-supervised methods.

A method is data, not a branch in the train step. The step asks the method for
the network inputs of the batch (two augmented views; rotated copies, patches
or tiles and their labels for a pretext task), runs the online network
(encoder -> head [-> predictor], as the config builds it) on them, asks the
method for the outputs of any target network, hands all of them to the
method's loss, applies the optimizer update and then the method's
`after_update`. It never asks which method it runs, so adding a method means
adding one module here and one config file.

Outputs are a dict of arrays over the global batch:
  'z1', 'z2'                  joint-embedding methods: projector outputs of the
                              two views, [N, D];
  'p1', 'p2'                  predictor outputs, when config.model has a predictor;
  'logits'                    pretext tasks: the classifier head's output;
  whatever `views` and `targets` return, e.g. a pretext task's 'labels' or
  BYOL's 'target_z1', 'target_z2'.
"""
import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssljax import augment
from ssljax.errors import InputError

Outputs = dict[str, jax.Array]
# (outputs, method_state, method_config) -> (loss, terms, new_method_state)
LossFn = Callable[[Outputs, Any, ml_collections.ConfigDict],
                  tuple[jax.Array, dict[str, jax.Array], Any]]
# (method_config, online_params, embedding_dim) -> initial method_state
InitStateFn = Callable[[ml_collections.ConfigDict, Any, int], Any]
# project(params, x) -> [2N, D] projector outputs of the network with `params`
# (BatchNorm on batch statistics, which are not kept).
ProjectFn = Callable[[Any, jax.Array], jax.Array]
# (method_state, project, both_views_x, method_config) -> extra outputs
TargetsFn = Callable[[Any, ProjectFn, jax.Array, ml_collections.ConfigDict],
                     Outputs]
# (method_state, updated_online_params, progress in [0, 1), method_config)
AfterUpdateFn = Callable[[Any, Any, jax.Array, ml_collections.ConfigDict], Any]
# (key, uint8 images [N, H, W, 3], method_state, full config) ->
#   (network inputs [M, S, S, 3] float in [0, 1], extra outputs such as labels)
ViewsFn = Callable[[jax.Array, jax.Array, Any, ml_collections.ConfigDict],
                   tuple[jax.Array, Outputs]]
# (head outputs [M / head_groups, D], predictor outputs or None) -> outputs
OutputsFn = Callable[[jax.Array, jax.Array | None], Outputs]


def two_views(key, images, state, config) -> tuple[jax.Array, Outputs]:
  """The joint-embedding input: both augmented views stacked, [2N, S, S, 3]."""
  del state
  return jnp.concatenate(augment.views(key, images, config.augment)), {}


def view_outputs(z: jax.Array, p: jax.Array | None) -> Outputs:
  """Splits the [2N, D] projections (and predictions) of both views into
  'z1', 'z2' (and 'p1', 'p2'), in float32 for the loss."""
  outputs = dict(zip(('z1', 'z2'), jnp.split(z.astype(jnp.float32), 2)))
  if p is not None:
    outputs.update(zip(('p1', 'p2'), jnp.split(p.astype(jnp.float32), 2)))
  return outputs


def logits_output(z: jax.Array, p: jax.Array | None) -> Outputs:
  """A pretext task's classifier head output, in float32 for the loss."""
  del p
  return {'logits': z.astype(jnp.float32)}


@dataclasses.dataclass(frozen=True)
class Method:
  """What the train step needs to know about an SSL method.

  Attributes:
    loss: pure function of the outputs and the method's state; returns the
      scalar loss, a dict of named terms for logging, and the next state. Only
      `loss` is differentiated; the new state is an auxiliary output.
    init_state: the state before the first step (TiCo's running covariance,
      BYOL's target parameters); `()` for stateless methods.
    targets: outputs computed without gradient before the loss, from the
      state (BYOL's target network); none by default.
    after_update: the state after the optimizer step, from the updated online
      parameters (BYOL's exponential moving average); unchanged by default.
    views: the network inputs of a batch and any labels; two augmented views
      by default.
    head_groups: how many consecutive blocks of the inputs the head sees at
      once: the inputs are `head_groups` blocks of N (block g holds part g of
      every image) and the head gets each image's G encoder features
      concatenated, [N, G * F] (a jigsaw puzzle's 9 tiles); 1 by default.
    outputs: names the head (and predictor) outputs for the loss.
  """
  loss: LossFn
  init_state: InitStateFn = lambda config, params, dim: ()
  targets: TargetsFn = lambda state, project, x, config: {}
  after_update: AfterUpdateFn = lambda state, params, progress, config: state
  views: ViewsFn = two_views
  head_groups: int = 1
  outputs: OutputsFn = view_outputs


_REGISTRY: dict[str, Method] = {}


def register(name: str, method: Method) -> Method:
  _REGISTRY[name] = method
  return method


def get(name: str) -> Method:
  """Returns the registered method, or raises naming the allowed values."""
  _import_all()
  if name not in _REGISTRY:
    raise InputError(
        f"config.method.name={name!r} is not a known method; "
        f"allowed values: {sorted(_REGISTRY)}")
  return _REGISTRY[name]


def names() -> list[str]:
  _import_all()
  return sorted(_REGISTRY)


def _import_all():
  # Importing a method module registers it.
  # pylint: disable=g-import-not-at-top,unused-import
  from ssljax.methods import barlow_twins, byol, simclr, simsiam
  from ssljax.methods import tico, vicreg, vicreg_tico
  from ssljax.methods import counting, jigsaw, relative_patch, rotation


def predictions(outputs: Outputs, method_name: str) -> tuple[jax.Array, ...]:
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
