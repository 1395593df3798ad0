"""SimSiam (Chen & He, CVPR 2021) on CIFAR-10.

Presets (`configs/simsiam.py:cpu`): full (default), cpu, smoke; see
`ssljax/defaults.py`. The full recipe is solo-learn's CIFAR-10 SimSiam: SGD
with momentum 0.9, lr 0.5 x batch/256, weight decay 1e-5, projector
2048 -> 2048 ending in BatchNorm, predictor 512 -> 2048, crops of scale
0.08-1, jitter 0.4/0.4/0.4/0.1, no solarization, no blur on 32x32 images.
"""
from ssljax import defaults
from ssljax.methods import simsiam


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = simsiam.default_config()
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 0.5
  config.optimizer.weight_decay = 1e-5
  config.augment.update(dict(saturation=0.4, solarize_prob=(0.0, 0.0)))
  projector, hidden = {'full': (2048, 512), 'cpu': (1024, 256),
                       'smoke': (256, 64)}[preset]
  config.model.projector_widths = (projector, projector)
  config.model.projector_last_norm = True
  config.model.predictor_widths = (hidden, projector)
  if preset == 'full':
    config.augment.crop_scale = (0.08, 1.0)
  return config
