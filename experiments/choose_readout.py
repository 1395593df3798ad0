"""Chooses the multi-scale readout of a trained checkpoint on the validation
split: the test split is never read.

    TFDS_DATA_DIR=../shared/tensorflow_datasets python experiments/choose_readout.py \
        --workdir=DIR --out=experiments/results/readout/NAME.json

Each candidate readout (encoder stages, each average-pooled over a g x g
grid; `evaluators/multiscale_probe.py`) is probed the way the run's own
multi-scale probe is, L2 chosen on a held-out 10% of what it trains on,
with `data.score_on='validation'`: the probe trains on the train split less
the carved validation images (`data.carve_validation`) and is scored on
those. Prints a table and writes OUT (validation accuracy and dimension per
readout, the chosen one, the checkpoint). The chosen readout's test
accuracy is then measured once, by the preset's own run when it is the
default, or by `python -m ssljax.evaluate --evals=multiscale_probe
--set=multiscale_probe.stages=... --set=multiscale_probe.grid=...`.
"""
import argparse
import functools
import os
import time

from ssljax import data
from ssljax import evaluators
from ssljax import features as features_lib
from ssljax import hosts
from ssljax import step as step_lib
from ssljax.evaluate import load_config
from ssljax.evaluators import multiscale_probe
from ssljax.workdir import checkpoints
from ssljax.workdir import jsonfile

# The eight readouts of experiments/results/cpu_recipes.md: (stages, grid).
CANDIDATES = (((4,), 1), ((4,), 2), ((3, 4), 2), ((2, 3, 4), 2),
              ((2, 3), 4), ((3, 4), 3), ((2, 3, 4), 4), ((1, 2, 3, 4), 4))


def validation_splits(config) -> dict:
  """The run's splits with the validation split in the place of the test
  split (`data.load_splits`, which then does not read the test split)."""
  config = config.copy_and_resolve_references()
  config.data.score_on = 'validation'
  return data.load_splits(config)


def validation_features(workdir: str) -> tuple:
  """(config, step, Features) of the latest checkpoint of `workdir`: the
  train split less the validation images in the place of train, the
  validation images in the place of test (`validation_splits`)."""
  config = load_config(workdir)
  splits = validation_splits(config)
  mesh, info = hosts.data_mesh(), data.describe(*splits['train'])
  manager = checkpoints.manager(os.path.join(workdir, 'checkpoints'))
  step = manager.latest_step()
  state, _ = checkpoints.restore(
      manager, step_lib.build(config, mesh, info).initial_state(), step)
  encoder = features_lib.encoder(config, mesh, info)
  (train_images, train_labels), (val_images, val_labels) = (
      splits['train'], splits['test'])
  return config, step, evaluators.Features(
      None, train_labels, None, val_labels, train_images, val_images, state,
      encode=functools.partial(encoder.extract, state))


def choose(workdir: str, candidates=CANDIDATES) -> dict:
  config, step, features = validation_features(workdir)
  scores = []
  for stages, grid in candidates:
    settings = multiscale_probe.default_config()
    settings.stages, settings.grid = stages, grid
    start = time.time()
    result = multiscale_probe.make(settings, config).run(features)
    scores.append({'stages': list(stages), 'grid': grid,
                   'feature_dim': result['feature_dim'],
                   'validation_accuracy': result['test_accuracy'],
                   'best_l2': result['best_l2'],
                   'seconds': time.time() - start})
    print(f"stages {stages} grid {grid}: {result['feature_dim']}-d, "
          f"validation {result['test_accuracy']:.4f}", flush=True)
  best = max(scores, key=lambda s: s['validation_accuracy'])
  return {'workdir': workdir, 'step': step,
          'validation_size': config.data.validation_size,
          'trained_on': len(features.train_images), 'readouts': scores,
          'chosen': {'stages': best['stages'], 'grid': best['grid']}}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  found = choose(args.workdir)
  print('| readout | dim | validation accuracy |\n|---|---|---|')
  for s in found['readouts']:
    print(f"| stages {'-'.join(map(str, s['stages']))}, {s['grid']}x"
          f"{s['grid']} | {s['feature_dim']:,} | "
          f"{s['validation_accuracy']:.4f} |")
  print(f"chosen: {found['chosen']}")
  os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
  jsonfile.write(args.out, found)


if __name__ == '__main__':
  main()
