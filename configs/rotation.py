"""RotNet rotation prediction (Gidaris et al., ICLR 2018) on CIFAR-10.

Presets (`configs/rotation.py:cpu`): full (default), cpu, cpu10, cpu30, cpu120,
smoke, gpu, tpu; see `ssljax/defaults.py`. The recipe is
`defaults.use_pretext_recipe` (RotNet's CIFAR optimizer); each image is cropped
(scale 0.5-1), flipped and seen in its four rotations, so a batch of B images
is 4B encoder inputs.
"""
from ssljax import defaults
from ssljax.methods import rotation


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = rotation.default_config()
  defaults.use_pretext_recipe(config, preset, rotation.NUM_ROTATIONS)
  if preset == 'cpu':  # The budgets choose their own length.
    # Four 24x24 inputs per image cost twice a two-view step per image.
    config.train.num_epochs = 2.0
  return config
