"""Counting visual primitives (Noroozi et al., ICCV 2017) on CIFAR-10.

Presets (`configs/counting.py:cpu`): full (default), cpu, cpu10, cpu30, cpu120,
smoke, gpu, tpu; see `ssljax/defaults.py`. The recipe is
`defaults.use_pretext_recipe`. The downsampled image and its four tiles are
16x16, upsampled to 32x32 in the full recipe. The count vector has 1000 entries
in the full recipe (as the paper) and the margin is the paper's 10; the head is
Linear-BN-ReLU, Linear, then a ReLU makes the counts non-negative.

The learning rate is a tenth of the other pretext tasks' (0.02 per 256
images): at 0.2 the first steps, where the feature-match term (sum of four
tiles against one image) is large, push every count below zero, after which
the loss sits at the margin with zero gradient
(experiments/results/cpu_single_runs.md, the pretext tasks). The CPU preset
sees each training image 3 times.
"""
from ssljax import defaults
from ssljax.methods import counting


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = counting.default_config()
  defaults.use_pretext_recipe(config, preset, num_classes=None)
  config.optimizer.learning_rate = 0.02
  config.model.projector_widths = {'full': (1024, 1000), 'cpu': (256, 256),
                                   'smoke': (64, 64)}[defaults.scale(preset)]
  if defaults.scale(preset) == 'full':
    config.method.input_size = 32
  if preset == 'cpu':  # The budgets choose their own length.
    # Five 16x16 inputs per image cost about as much as a two-view 24x24
    # step (`python -m ssljax.bench --config=configs/counting.py:cpu`).
    config.train.num_epochs = 3.0
  return config
