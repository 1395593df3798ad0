"""VICReg (Bardes, Ponce & LeCun, ICLR 2022) on CIFAR-10.

Presets (`configs/vicreg.py:cpu`): full (default), cpu, smoke; see
`ssljax/defaults.py`. The full recipe is solo-learn's CIFAR-10 VICReg: LARS,
lr 0.3 x batch/256, weight decay 1e-4, 2048-2048-2048 projector, 1000 epochs.
"""
from ssljax import defaults
from ssljax.methods import vicreg


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = tico.default_config()
  return config
