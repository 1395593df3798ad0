"""Encoder + heads, built from the config."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.errors import InputError

from ssljax.models.heads import MLP
from ssljax.models.resnet import BACKBONES

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'auto': None}


def compute_dtype(name: str):
  """'auto' is bfloat16 where the hardware computes it fast (GPU, TPU), else
  float32: on CPU, XLA's bfloat16 is no faster and loses precision."""
  if name == 'auto':
    return jnp.float32 if jax.default_backend() == 'cpu' else jnp.bfloat16
  return DTYPES[name]


def group_features(h: jax.Array, head_groups: int) -> jax.Array:
  """[G * N, F] features of G blocks of N inputs -> [N, G * F]: row n holds
  the features of part 0..G-1 of image n (identity for G = 1)."""
  if head_groups == 1:
    return h
  g = h.reshape(head_groups, -1, h.shape[-1])
  return jnp.transpose(g, (1, 0, 2)).reshape(g.shape[1], -1)


class SSLModel(nn.Module):
  """The encoder followed by the projector and, for BYOL/SimSiam, a predictor.

  The train step runs it in two parts, `encode` then `heads`, so that the
  benchmark can time each part of the very functions training runs.
  `encode` returns the encoder features, and with `head_groups` = G > 1 (the
  inputs are G blocks of N) each image's G features side by side,
  [N, G * F]: a pretext task's head sees all parts of an image at once.
  `heads` returns the projector output (a pretext task's classifier) and the
  predictor output (None without a predictor). `project` stops at the
  projector (BYOL's target network); `features` runs the encoder alone in
  inference mode, what the evaluators see. `classify` is the optional online
  probe, a linear classifier on encoder features that no gradient leaves.
  """
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module | None = None
  classifier: nn.Module | None = None

  def __call__(self, x, train: bool, head_groups: int = 1):
    h = self.encode(x, train, head_groups)
    if self.classifier is not None:  # Creates its parameters at init.
      self.classify(h[:, :h.shape[1] // head_groups])
    return (h, *self.heads(h, train))

  def classify(self, h):
    return self.classifier(jax.lax.stop_gradient(h))

  def encode(self, x, train: bool, head_groups: int = 1):
    return group_features(self.encoder(x, train), head_groups)

  def heads(self, h, train: bool):
    z = self.projector(h, train)
    return z, None if self.predictor is None else self.predictor(z, train)

  def project(self, x, train: bool):
    return self.projector(self.encoder(x, train), train)

  def features(self, x):
    return self.encoder(x, train=False)


def check_names(config: ml_collections.ConfigDict):
  """An unknown backbone or dtype fails naming the allowed values."""
  if config.model.backbone not in BACKBONES:
    raise InputError(
        f'config.model.backbone={config.model.backbone!r} is not known; '
        f'allowed values: {sorted(BACKBONES)}')
  if config.model.dtype not in DTYPES:
    raise InputError(
        f'config.model.dtype={config.model.dtype!r} is not known; '
        f'allowed values: {sorted(DTYPES)}')


def create_model(config: ml_collections.ConfigDict,
                 num_classes: int = 0) -> SSLModel:
  """Builds the model named by `config.model` (checked by
  `validate.check`), with an online probe over `num_classes` when
  `config.model.online_probe`."""
  dtype = compute_dtype(config.model.dtype)
  predictor = None
  if config.model.predictor_widths:
    predictor = MLP(widths=tuple(config.model.predictor_widths),
                    last_bias=True, dtype=dtype)
  classifier = None
  if config.model.online_probe:
    if num_classes < 2:
      raise InputError('config.model.online_probe=True needs the labels of '
                       'the train split, and this run has none.')
    classifier = nn.Dense(num_classes, dtype=jnp.float32)
  return SSLModel(
      encoder=BACKBONES[config.model.backbone](
          width=config.model.width, stem_strides=config.model.stem_strides,
          dtype=dtype),
      classifier=classifier,
      projector=MLP(widths=tuple(config.model.projector_widths),
                    last_bias=config.model.projector_last_bias,
                    last_norm=config.model.projector_last_norm, dtype=dtype),
      predictor=predictor)
