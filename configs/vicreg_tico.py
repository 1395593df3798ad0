"""The VICReg-TiCo hybrid on CIFAR-10: VICReg's invariance and variance terms
plus TiCo's covariance contrast against a running covariance C.

Presets (`configs/vicreg_tico.py:cpu`): full (default), cpu, smoke; see
`ssljax/defaults.py`. Optimizer and projector are VICReg's CIFAR recipe.
"""
from ssljax import defaults
from ssljax.methods import vicreg_tico


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = vicreg_tico.default_config()
  return config
