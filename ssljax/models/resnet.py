"""ResNet-18/34/50 (He et al. 2016) with the CIFAR stem used by SSL papers.

The CIFAR stem is a 3x3 convolution with stride 1 and no max-pool, so a 32x32
image keeps enough spatial resolution for the four stages. `width` multiplies
every channel count, which gives the small encoders our CPU presets train.
`dtype` is the compute dtype (bfloat16 on TPU/GPU); parameters stay float32.
`convolution` computes every convolution: by default `models.conv`'s, which
on CPU computes most layers by Winograd, patch products or a kernel gradient
by taps; `lax.conv_general_dilated` (XLA's own) or `conv.using(...)` (some
of those formulations only) build the same parameters.
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssljax.models import conv as conv_lib


class Block(nn.Module):
  """A residual block's settings: output channels (before a bottleneck's
  expansion), stride, and the convolution and norm layers to build with."""
  channels: int
  strides: int
  conv: Any
  norm: Any


class BasicBlock(Block):
  """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

  @nn.compact
  def __call__(self, x):
    y = nn.relu(self.norm()(self.conv(self.channels, (3, 3), self.strides)(x)))
    y = self.norm()(self.conv(self.channels, (3, 3))(y))
    if x.shape[-1] != self.channels or self.strides != 1:
      x = self.norm()(self.conv(self.channels, (1, 1), self.strides)(x))
    return nn.relu(x + y)


class Bottleneck(Block):
  """1x1 reduce, 3x3, 1x1 expand (x4), as in ResNet-50."""

  @nn.compact
  def __call__(self, x):
    y = nn.relu(self.norm()(self.conv(self.channels, (1, 1))(x)))
    y = nn.relu(self.norm()(self.conv(self.channels, (3, 3), self.strides)(y)))
    y = self.norm()(self.conv(4 * self.channels, (1, 1))(y))
    if x.shape[-1] != 4 * self.channels or self.strides != 1:
      x = self.norm()(self.conv(4 * self.channels, (1, 1), self.strides)(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """Returns globally average-pooled features [N, feature_dim].

  Each stage's output map is also sown into the 'intermediates' collection
  ('stage1'..'stage4'), for readouts that pool more than the last layer
  (`evaluators.multiscale_probe`); applied without that collection mutable,
  as training applies it, sowing does nothing."""
  stage_sizes: Sequence[int]
  block: Any
  width: float = 1.0
  # 2 downsamples in the stem: every stage runs at a quarter of the
  # positions, a quarter of the FLOPs (on XLA:CPU at the `cpu` model's size
  # no faster: experiments/results/cpu_recipes.md).
  stem_strides: int = 1
  dtype: Any = jnp.float32
  # `lax.conv_general_dilated`'s signature; see the module docstring.
  convolution: Any = conv_lib.conv_general_dilated

  @nn.compact
  def __call__(self, x, train: bool):
    # He-normal (fan-out) kernels, as torchvision's ResNet, which the
    # reference SSL implementations use.
    conv = functools.partial(
        nn.Conv, use_bias=False, dtype=self.dtype, padding='SAME',
        kernel_init=nn.initializers.variance_scaling(2.0, 'fan_out', 'normal'),
        conv_general_dilated=self.convolution)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5, dtype=self.dtype)
    base = max(1, round(64 * self.width))
    x = conv(base, (3, 3), self.stem_strides)(x.astype(self.dtype))
    x = nn.relu(norm()(x))
    for stage, num_blocks in enumerate(self.stage_sizes):
      for b in range(num_blocks):
        strides = 2 if stage > 0 and b == 0 else 1
        x = self.block(base * 2**stage, strides, conv, norm)(x)
      self.sow('intermediates', f'stage{stage + 1}', x)
    return jnp.mean(x, axis=(1, 2))


BACKBONES = {
    'resnet18': functools.partial(ResNet, (2, 2, 2, 2), BasicBlock),
    'resnet34': functools.partial(ResNet, (3, 4, 6, 3), BasicBlock),
    'resnet50': functools.partial(ResNet, (3, 4, 6, 3), Bottleneck),
}
