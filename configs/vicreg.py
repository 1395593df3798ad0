"""VICReg (Bardes, Ponce & LeCun, ICLR 2022) on CIFAR-10.

Presets (`configs/vicreg.py:cpu`): full (default), cpu, cpu10, cpu30, cpu120,
smoke, gpu, tpu; see `ssljax/defaults.py`. The full recipe is solo-learn's
CIFAR-10 VICReg: LARS, lr 0.3 x batch/256, weight decay 1e-4, 2048-2048-2048
projector, 1000 epochs, 10 warmup epochs. gpu and tpu are that recipe in
bfloat16 at batch 256 (peak lr 0.3) and 1024 (peak 1.2, solo-learn's linear
scaling).
"""
from ssljax import defaults
from ssljax.methods import vicreg


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = vicreg.default_config()
  return config
