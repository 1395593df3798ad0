"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016) on CIFAR-10.

Presets (`configs/jigsaw.py:cpu`): full (default), cpu, cpu10, cpu30, cpu120,
smoke, gpu, tpu; see `ssljax/defaults.py`. The recipe is
`defaults.use_pretext_recipe`. Tiles are 8x8 pixels on a 3x3 grid with a
2-pixel gap and up to 2 pixels of jitter (30 of the 32 pixels), colour dropping
on 30% of the tiles, upsampled to 16x16 (CPU presets) or 32x32 (full). The full
recipe classifies 100 permutations (minimum pairwise Hamming distance 6), the
CPU presets 64 (the same greedy set's first 64, distance 7): fewer, more
distinct classes learn faster in a short run. The head sees the 9 tile features
concatenated.
"""
from ssljax import defaults
from ssljax.methods import jigsaw


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = jigsaw.default_config()
  if defaults.scale(preset) != 'full':
    config.method.num_permutations = 64
  defaults.use_pretext_recipe(config, preset, config.method.num_permutations)
  if defaults.scale(preset) == 'full':
    config.method.input_size = 32
  if preset == 'cpu':  # The budgets choose their own length.
    # Nine 16x16 inputs per image cost more than a two-view 24x24 step
    # (`python -m ssljax.bench --config=configs/jigsaw.py:cpu`).
    config.train.num_epochs = 2.0
  return config
