"""BYOL (Grill et al., NeurIPS 2020) on CIFAR-10.

Presets (`configs/byol.py:cpu`): full (default), cpu, smoke; see
`ssljax/defaults.py`. The full recipe is solo-learn's CIFAR-10 BYOL: LARS,
lr 1.0 x batch/256, weight decay 1e-5, projector 4096 -> 256, predictor
4096 -> 256, tau from 0.99 to 1 on a cosine schedule, crops of scale
0.08-1, solarization on the second view only, no blur.
"""
from ssljax import defaults
from ssljax.methods import byol


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = byol.default_config()
  config.optimizer.learning_rate = 1.0
  config.optimizer.weight_decay = 1e-5
  config.augment.solarize_prob = (0.0, 0.2)
  widths = {'full': (4096, 256), 'cpu': (1024, 256), 'smoke': (256, 64)}[preset]
  config.model.projector_widths = widths
  config.model.predictor_widths = widths
  if preset == 'full':
    config.augment.crop_scale = (0.08, 1.0)
  if preset == 'cpu':
    # The target network adds a forward pass of both views to every step;
    # batch 64 is faster per image on a 2-core CPU
    # (experiments/results/cpu_presets.md), which keeps the four epochs
    # within the 30-minute budget.
    config.train.batch_size = 64
  return config
