"""Self-supervised methods: what the train step asks of each, and the lookup.

A method is data, not a branch in the train step. Each module of this package
(except `common`, the math several losses share) is one method and defines
`default_config()`, the `RANGES` of its numeric settings (`ssljax.ranges`,
which `validate` applies) and `make(config) -> Method`, which binds the
method's settings once; the hooks
of the `Method` it returns then take only the data they act on. The step
asks the method for the network inputs of the batch (two augmented views;
rotated copies, patches or tiles and their labels for a pretext task), runs
the online network (encoder -> head [-> predictor], as `config.model`
builds it) on them, asks for the outputs of any target network, hands all of
them to the loss, applies the optimizer update and then `after_update`. It
never asks which method it runs: adding a method means adding one module
here and one config file, and every list of methods is `names()`.

Outputs are a dict of float32 arrays over the global batch:
  'z1', 'z2'     joint-embedding methods: projector outputs of the two views;
  'p1', 'p2'     predictor outputs, when `config.model` has a predictor;
  'logits'       a pretext task's classifier head output;
  and whatever `views` and `targets` return (a pretext task's 'labels',
  BYOL's 'target_z1', 'target_z2').
"""
import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

import jax
import ml_collections

from ssljax.errors import InputError

Outputs = dict[str, jax.Array]
# project(params, x) -> projector outputs of the network with `params` on the
# inputs x, BatchNorm on batch statistics (which are not kept).
ProjectFn = Callable[[Any, jax.Array], jax.Array]

# Modules of this package that are not methods.
_SHARED = ('common',)


@dataclasses.dataclass(frozen=True)
class Method:
  """What the train step needs to know about an SSL method.

  Attributes:
    loss: (outputs, state) -> (scalar loss, {term name: scalar}, next state).
      Only the loss is differentiated; the terms are logged by name and the
      next state is an auxiliary output.
    views: (key, images float32 [N, H, W, 3] in [0, 1]) -> (network inputs
      [M, S, S, 3] in [0, 1], extra outputs such as labels).
    outputs: (head output, predictor output or None) -> named outputs for the
      loss, in float32. The head sees `head_groups` inputs per image at once.
    init_state: (online params) -> the state before the first step (TiCo's
      running covariance, BYOL's target parameters); `()` by default.
      Constants are closed over by `make`, not kept as state.
    targets: (state, project, inputs) -> outputs computed without gradient
      before the loss (BYOL's target network); none by default.
    after_update: (state, updated online params, progress in [0, 1)) -> the
      state after the optimizer step (BYOL's moving average); unchanged by
      default.
    state_diagnostics: state -> {name: array} the collapse diagnostics log
      beside the representation's (TiCo's running covariance in numbers:
      `collapse.matrix_summary`); none by default.
    head_groups: how many consecutive blocks of the inputs the head sees at
      once: the inputs are `head_groups` blocks of N (block g holds part g
      of every image) and the head gets each image's G encoder features side
      by side, [N, G * F] (a jigsaw puzzle's 9 tiles); 1 by default.
  """
  loss: Callable[[Outputs, Any], tuple[jax.Array, dict[str, jax.Array], Any]]
  views: Callable[[jax.Array, jax.Array], tuple[jax.Array, Outputs]]
  outputs: Callable[[jax.Array, jax.Array | None], Outputs]
  init_state: Callable[[Any], Any] = lambda params: ()
  targets: Callable[[Any, ProjectFn, jax.Array], Outputs] = (
      lambda state, project, x: {})
  after_update: Callable[[Any, Any, jax.Array], Any] = (
      lambda state, params, progress: state)
  state_diagnostics: Callable[[Any], dict[str, jax.Array]] = (
      lambda state: {})
  head_groups: int = 1


def names() -> list[str]:
  """Every method: the modules of this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__)
                if m.name not in _SHARED)


def check_name(config: ml_collections.ConfigDict):
  """An unknown `config.method.name` fails naming the allowed values."""
  if config.method.name not in names():
    raise InputError(f'config.method.name={config.method.name!r} is not a '
                     f'known method; allowed values: {names()}')


def make(config: ml_collections.ConfigDict) -> Method:
  """The method `config.method.name` (checked by `validate.check`), bound
  to `config`."""
  return importlib.import_module(
      f'{__name__}.{config.method.name}').make(config)
