"""Relative patch location (Doersch et al., ICCV 2015) on CIFAR-10.

Presets (`configs/relative_patch.py:cpu`): full (default), cpu, cpu10, cpu30,
cpu120, smoke, gpu, tpu; see `ssljax/defaults.py`. The recipe is
`defaults.use_pretext_recipe`. Patches are 8x8 pixels on a 3x3 grid with a
3-pixel gap and up to 2 pixels of jitter (3*8 + 2*3 + 2 = 32: the largest grid
a 32x32 image holds with a gap), and colour dropping on every patch (the
paper's setting). They are upsampled to 16x16 for the encoder on the CPU
presets and to 32x32, the probe's resolution, in the full recipe (and gpu,
tpu).
"""
from ssljax import defaults
from ssljax.methods import relative_patch


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = relative_patch.default_config()
  defaults.use_pretext_recipe(config, preset, len(relative_patch.NEIGHBOURS))
  if defaults.scale(preset) == 'full':
    config.method.input_size = 32
  if preset == 'cpu':  # The budgets choose their own length.
    # Two 16x16 inputs per image cost less than a two-view 24x24 step
    # (`python -m ssljax.bench --config=configs/relative_patch.py:cpu`).
    config.train.num_epochs = 8.0
  return config
