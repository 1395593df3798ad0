"""Encoder + heads, built from the config."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.errors import InputError

from ssljax.models.heads import Projector
from ssljax.models.resnet import BACKBONES

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'auto': None}


def compute_dtype(name: str):
  """'auto' is bfloat16 where the hardware computes it fast (GPU, TPU), else
  float32: on CPU, XLA's bfloat16 is no faster and loses precision."""
  if name == 'auto':
    return jnp.float32 if jax.default_backend() == 'cpu' else jnp.bfloat16
  return DTYPES[name]


class SSLModel(nn.Module):
  """The encoder followed by the projector.

  `__call__` returns both the encoder features (what the linear probe sees) and
  the projector output (what the loss sees); `features` runs the encoder alone,
  so evaluation never pays for the projector.
  """
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, x, train: bool):
    h = self.encoder(x, train)
    return h, self.projector(h, train)

  def features(self, x):
    return self.encoder(x, train=False)


def create_model(config: ml_collections.ConfigDict) -> SSLModel:
  """Builds the model named by `config.model`; bad names fail with the choices."""
  if config.model.backbone not in BACKBONES:
    raise InputError(
        f'config.model.backbone={config.model.backbone!r} is not known; '
        f'allowed values: {sorted(BACKBONES)}')
  if config.model.dtype not in DTYPES:
    raise InputError(
        f'config.model.dtype={config.model.dtype!r} is not known; '
        f'allowed values: {sorted(DTYPES)}')
  dtype = compute_dtype(config.model.dtype)
  return SSLModel(
      encoder=BACKBONES[config.model.backbone](width=config.model.width,
                                               dtype=dtype),
      projector=Projector(widths=tuple(config.model.projector_widths),
                          dtype=dtype))
