"""SimSiam (Chen & He, CVPR 2021) on CIFAR-10.

Presets (`configs/simsiam.py:cpu`): full (default), cpu, cpu10, cpu30, cpu120,
smoke, gpu, tpu; see `ssljax/defaults.py`. The full recipe is solo-learn's
CIFAR-10 SimSiam: SGD with momentum 0.9, lr 0.5 x batch/256, weight decay 1e-5,
projector 2048 -> 2048 ending in BatchNorm, predictor 512 -> 2048, crops of
scale 0.08-1, jitter 0.4/0.4/0.4/0.1, no solarization, no blur on 32x32 images;
1000 epochs, 10 warmup epochs. gpu and tpu are that recipe in bfloat16 at batch
256 (peak lr 0.5) and 1024 (peak 2.0): linear scaling, with which the SimSiam
paper's SGD (its Table 2, ImageNet) is as accurate at batch 1024 and 2048 as at
256.
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
                       'smoke': (256, 64)}[defaults.scale(preset)]
  config.model.projector_widths = (projector, projector)
  config.model.projector_last_norm = True
  config.model.predictor_widths = (hidden, projector)
  if defaults.scale(preset) == 'full':
    config.augment.crop_scale = (0.08, 1.0)
  return config
