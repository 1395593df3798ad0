"""SimCLR (Chen et al., ICML 2020) on CIFAR-10.

Presets (`configs/simclr.py:cpu`): full (default), cpu, cpu10, cpu30, cpu120,
smoke, gpu, tpu; see `ssljax/defaults.py`. The full recipe is solo-learn's
CIFAR-10 SimCLR: LARS, lr 0.4 x batch/256, weight decay 1e-4, projector 2048 ->
256, temperature 0.2, crops of scale 0.08-1 and the stronger colour jitter
0.8/0.8/0.8/0.2; no blur on 32x32 images, as the SimCLR paper's CIFAR
experiments; 1000 epochs, 10 warmup epochs. gpu and tpu are that recipe in
bfloat16 at batch 256 (peak lr 0.4) and 1024 (peak 1.6: solo-learn's linear
scaling, which the SimCLR paper also uses with LARS; the 2046 negatives of each
view at batch 1024, against 510, are what SimCLR gains from a large batch).
"""
from ssljax import defaults
from ssljax.methods import simclr


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = simclr.default_config()
  config.optimizer.learning_rate = 0.4
  config.augment.update(dict(brightness=0.8, contrast=0.8, saturation=0.8,
                             hue=0.2, solarize_prob=(0.0, 0.0)))
  config.model.projector_widths = {'full': (2048, 256), 'cpu': (1024, 128),
                                   'smoke': (256, 64)}[defaults.scale(preset)]
  if defaults.scale(preset) == 'full':
    config.augment.crop_scale = (0.08, 1.0)
  return config
