"""MLP heads on top of the encoder: projectors and predictors."""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """(Linear-BN-ReLU) x (len(widths) - 1), then Linear [-BN].

  As a projector: Barlow Twins / VICReg use 2048-2048-2048 on CIFAR (Zbontar
  et al. 2021, Bardes et al. 2022), SimCLR and BYOL a hidden layer then a
  narrow output, SimSiam ends with a BatchNorm without affine parameters
  (`last_norm`). As a predictor: BYOL's and SimSiam's MLP on the projection.
  The last Linear has no bias by default, as in the Barlow Twins and VICReg
  reference code; BYOL's predictor has one (`last_bias`).
  """
  widths: Sequence[int]
  last_bias: bool = False
  last_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda **kw: nn.BatchNorm(use_running_average=not train,
                                     momentum=0.9, epsilon=1e-5,
                                     dtype=self.dtype, **kw)
    for width in self.widths[:-1]:
      x = nn.relu(norm()(nn.Dense(width, use_bias=False, dtype=self.dtype)(x)))
    x = nn.Dense(self.widths[-1], use_bias=self.last_bias, dtype=self.dtype)(x)
    if self.last_norm:
      x = norm(use_scale=False, use_bias=False)(x)
    return x
