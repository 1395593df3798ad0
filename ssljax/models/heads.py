"""Heads on top of the encoder."""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class Projector(nn.Module):
  """Barlow Twins / VICReg projector: (Linear-BN-ReLU) x (len-1), then Linear.

  The default CIFAR widths are 2048-2048-2048 (Zbontar et al. 2021, Bardes et
  al. 2022). The last layer has no bias, as in those reference implementations.
  """
  widths: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    for width in self.widths[:-1]:
      x = nn.Dense(width, use_bias=False, dtype=self.dtype)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       epsilon=1e-5, dtype=self.dtype)(x)
      x = nn.relu(x)
    return nn.Dense(self.widths[-1], use_bias=False, dtype=self.dtype)(x)
