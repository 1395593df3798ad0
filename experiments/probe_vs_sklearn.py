"""Our jitted linear probe against scikit-learn's LogisticRegression on the
same features, the same held-out split for choosing the L2 strength, and the
same L2 grid; prints accuracy and seconds of each.

  TFDS_DATA_DIR=../shared/tensorflow_datasets python experiments/probe_vs_sklearn.py \
      --config=configs/vicreg.py [--workdir=DIR_WITH_CHECKPOINT]

Without --workdir the encoder is the config's at random initialisation.
scikit-learn is needed only here (pip install scikit-learn); it is not a
dependency of ssljax.
"""
import json
import os
import time

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np
from sklearn.linear_model import LogisticRegression

from ssljax import data
from ssljax import evaluators
from ssljax import features
from ssljax import hosts
from ssljax import step as step_lib
from ssljax.evaluators import linear_probe
from ssljax.workdir import checkpoints

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (and preset).')
flags.DEFINE_string('workdir', None, 'Restore the encoder from here.')
flags.DEFINE_string('json_out', None, 'Also write the results here.')
flags.DEFINE_string('features_cache', None,
                    'An .npz of the features: read if it exists, else written.')


def sklearn_probe(train_x, train_y, test_x, test_y, l2_grid, seed=0):
  """As `linear_probe.linear_probe`, with sklearn: mean loss + l2 ||W||^2 is
  sklearn's C * sum loss + ||W||^2 / 2 with C = 1 / (2 * l2 * n)."""
  start = time.time()
  order = np.random.default_rng(seed).permutation(len(train_x))
  held, kept = order[:len(order) // 10], order[len(order) // 10:]
  fit_x, held_x = linear_probe.standardize_features(train_x[kept],
                                                    train_x[held])
  make = lambda l2, n: LogisticRegression(C=1 / (2 * l2 * n), max_iter=1000)
  holdout = [make(l2, len(kept)).fit(fit_x, train_y[kept]).score(
      held_x, train_y[held]) for l2 in l2_grid]
  best = l2_grid[int(np.argmax(holdout))]
  full_x, test_x = linear_probe.standardize_features(train_x, test_x)
  model = make(best, len(full_x)).fit(full_x, train_y)
  return {'test_accuracy': model.score(test_x, test_y), 'best_l2': best,
          'holdout_accuracies': holdout, 'seconds': time.time() - start}


def _by_l2(l2_values, values):
  return ', '.join(f'{v:.4f} ({l2:g})' for l2, v in sorted(zip(l2_values,
                                                                values)))


_CACHED = ('train_x', 'train_y', 'test_x', 'test_y')


def main(argv):
  del argv
  config = FLAGS.config
  splits = data.load_splits(config)
  mesh, info = hosts.data_mesh(), data.describe(splits['train'][0])
  state = step_lib.build(config, mesh, info).initial_state()
  if FLAGS.workdir:
    state, _, _ = checkpoints.resume(
        checkpoints.manager(f'{FLAGS.workdir}/checkpoints'), state)
  if FLAGS.features_cache and os.path.exists(FLAGS.features_cache):
    args = tuple(np.load(FLAGS.features_cache)[k] for k in _CACHED)
  else:
    start = time.time()
    encoder = features.encoder(config, mesh, info)
    args = (encoder.extract(state, splits['train'][0]), splits['train'][1],
            encoder.extract(state, splits['test'][0]), splits['test'][1])
    print(f'features {args[0].shape} in {time.time() - start:.0f} s',
          flush=True)
    if FLAGS.features_cache:
      np.savez(FLAGS.features_cache, **dict(zip(_CACHED, args)))
  probe_config = config.evals.linear_probe
  grid = tuple(probe_config.l2_grid)
  ours = linear_probe.make(probe_config, config).run(
      evaluators.Features(*args))
  print(f"ssljax probe: test accuracy {ours['test_accuracy']:.4f}, best l2 "
        f"{ours['best_l2']:g}, {ours['seconds']:.1f} s; held-out accuracy "
        + _by_l2(ours['l2_grid'], ours['holdout_accuracies']), flush=True)
  theirs = sklearn_probe(*args, grid)
  print(f"scikit-learn: test accuracy {theirs['test_accuracy']:.4f}, best l2 "
        f"{theirs['best_l2']:g}, {theirs['seconds']:.1f} s; held-out accuracy "
        + _by_l2(grid, theirs['holdout_accuracies']), flush=True)
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump({'ssljax': ours, 'sklearn': theirs,
                 'feature_shape': list(args[0].shape)}, f, indent=2)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main)
