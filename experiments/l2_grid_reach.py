"""Does the linear probe's L2 grid reach far enough? For each workdir, the
held-out cross-entropy (what chooses the L2) over a grid wider than the
probe's, on the standard readout of the latest checkpoint. Only the train
split less the carved validation images is read (`choose_readout.
validation_features`); no accuracy of any split is printed or used.

    TFDS_DATA_DIR=../shared/tensorflow_datasets python experiments/l2_grid_reach.py \\
        --out=experiments/results/l2/NAME.json DIR...

Prints, per run, the held-out cross-entropy at each L2 and the L2 that
minimises it; a minimum at an end of the probe's default grid means the grid
is too short there.
"""
import argparse
import os

from choose_readout import validation_features
from ssljax.evaluators import linear_probe
from ssljax.workdir import jsonfile

WIDE_GRID = (1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1,
             1.0)


def reach(workdir: str) -> dict:
  config, step, features = validation_features(workdir)
  settings = linear_probe.default_config()
  # The probe's own held-out part of what it trains on; the "test" half of
  # the call is a copy of it, so nothing outside the train part is read.
  train = features.encode(features.train_images)
  result = linear_probe.linear_probe(
      train, features.train_labels, train[:1], features.train_labels[:1],
      l2_grid=WIDE_GRID, holdout_fraction=settings.holdout_fraction,
      num_steps=settings.num_steps, seed=config.seed)
  return {'workdir': workdir, 'method': config.method.name, 'step': step,
          'feature_dim': int(train.shape[1]), 'l2_grid': result['l2_grid'],
          'holdout_cross_entropies': result['holdout_cross_entropies'],
          'best_l2': result['best_l2'],
          'default_grid': sorted(settings.l2_grid, reverse=True)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+')
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  found = []
  for workdir in args.workdirs:
    r = reach(workdir)
    found.append(r)
    print(f"{r['method']} ({workdir}, step {r['step']}, "
          f"{r['feature_dim']}-d): best L2 {r['best_l2']:g}; default grid "
          f"{min(r['default_grid']):g}..{max(r['default_grid']):g}")
    print('  ' + '  '.join(f'{l2:g}: {ce:.4f}' for l2, ce in zip(
        r['l2_grid'], r['holdout_cross_entropies'])), flush=True)
  os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
  jsonfile.write(args.out, found)


if __name__ == '__main__':
  main()
