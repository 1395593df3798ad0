"""Barlow Twins (Zbontar et al., ICML 2021) on CIFAR-10.

Presets (`configs/barlow_twins.py:cpu`): full (default), cpu, cpu10, cpu30,
cpu120, smoke, gpu, tpu; see `ssljax/defaults.py`. The full recipe is
solo-learn's CIFAR-10 Barlow Twins: LARS, lr 0.3 x batch/256, weight decay
1e-4, 2048-2048-2048 projector, lambda 0.0051, loss scale 0.1, crops of scale
0.08-1, solarization on the second view only, 1000 epochs, 10 warmup epochs.
gpu and tpu are that recipe in bfloat16 at batch 256 (peak lr 0.3) and 1024
(peak 1.2, solo-learn's linear scaling).
"""
from ssljax import defaults
from ssljax.methods import barlow_twins


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = barlow_twins.default_config()
  config.augment.solarize_prob = (0.0, 0.2)
  if defaults.scale(preset) == 'full':
    config.augment.crop_scale = (0.08, 1.0)
  return config
