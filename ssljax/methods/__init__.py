"""Registry of self-supervised methods.

A method is data, not a branch in the train step: it says how to build its own
state (kept in `TrainState.method_state`) and how to turn the two projected views
into a loss. The train step calls these two functions and nothing else, so adding
a method means adding one module here and one config file.
"""
import dataclasses
from typing import Any, Callable

import jax
import ml_collections

from ssljax.errors import InputError

# (z1, z2, method_state, method_config) -> (loss, terms, new_method_state)
LossFn = Callable[[jax.Array, jax.Array, Any, ml_collections.ConfigDict],
                  tuple[jax.Array, dict[str, jax.Array], Any]]
# (method_config, embedding_dim) -> initial method_state pytree
InitStateFn = Callable[[ml_collections.ConfigDict, int], Any]


@dataclasses.dataclass(frozen=True)
class Method:
  """What the train step needs to know about an SSL method.

  Attributes:
    loss: pure function of the two views' projector outputs (global batch,
      shape [N, D] each) and the method's state; returns the scalar loss, a dict
      of named terms for logging, and the next method state. Only `loss` is
      differentiated; the new state is treated as an auxiliary output.
    init_state: builds the method's state before the first step (e.g. TiCo's
      running covariance C); `()` for stateless methods.
  """
  loss: LossFn
  init_state: InitStateFn = lambda config, dim: ()


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
  from ssljax.methods import tico, vicreg, vicreg_tico  # pylint: disable=g-import-not-at-top,unused-import
