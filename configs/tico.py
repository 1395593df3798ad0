"""TiCo (Zhu, Liu, Wu & Kong, 2022) on CIFAR-10.

Presets (`configs/tico.py:cpu`): full (default), cpu, cpu10, cpu30, cpu120,
smoke, gpu, tpu; see `ssljax/defaults.py`. beta = 0.9 and rho = 8 as in the
study ssljax grew from; the optimizer and projector are VICReg's CIFAR recipe,
so that the two losses are compared on equal terms. gpu and tpu are the full
recipe in bfloat16 at batch 256 (peak lr 0.3) and 1024 (peak 1.2), as VICReg's;
beta stays 0.9 at batch 1024, so C remembers ~10 batches, 4x more images, each
batch's covariance a less noisy estimate (no published rule scales it).
"""
from ssljax import defaults
from ssljax.methods import tico


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = tico.default_config()
  if defaults.scale(preset) == 'cpu':
    # Chosen by the proxy sweep (experiments/results/cpu_presets.md): at this
    # short schedule a faster-moving C and more, smaller steps lift the probe
    # most; batch 64 is also faster per image on a 2-core CPU.
    config.train.batch_size = 64
    config.method.beta = 0.5
  return config
