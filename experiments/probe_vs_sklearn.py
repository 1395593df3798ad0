"""Our jitted linear probe against scikit-learn's LogisticRegression on the
same features, the same held-out split for choosing the L2 strength, and the
same L2 grid; prints accuracy and seconds of each.

  TFDS_DATA_DIR=../shared/tensorflow_datasets python experiments/probe_vs_sklearn.py \
      --config=configs/vicreg.py [--workdir=DIR_WITH_CHECKPOINT]

Without --workdir the encoder is the config's at random initialisation.
scikit-learn is needed only here (pip install scikit-learn); it is not a
dependency of ssljax.
"""
import functools
import json
import os
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np
import orbax.checkpoint as ocp
from sklearn.linear_model import LogisticRegression

from ssljax import data
from ssljax import evaluate
from ssljax import methods
from ssljax import models
from ssljax import optim
from ssljax import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (and preset).')
flags.DEFINE_string('workdir', None, 'Restore the encoder from here.')
flags.DEFINE_string('json_out', None, 'Also write the results here.')
flags.DEFINE_string('features_cache', None,
                    'An .npz of the features: read if it exists, else written.')


def sklearn_probe(train_x, train_y, test_x, test_y, l2_grid, seed=0):
  """As `evaluate.linear_probe`, with sklearn: mean loss + l2 ||W||^2 is
  sklearn's C * sum loss + ||W||^2 / 2 with C = 1 / (2 * l2 * n)."""
  start = time.time()
  order = np.random.default_rng(seed).permutation(len(train_x))
  held, kept = order[:len(order) // 10], order[len(order) // 10:]
  fit_x, held_x = evaluate._standardize(train_x[kept], train_x[held])  # pylint: disable=protected-access
  make = lambda l2, n: LogisticRegression(C=1 / (2 * l2 * n), max_iter=1000)
  holdout = [make(l2, len(kept)).fit(fit_x, train_y[kept]).score(
      held_x, train_y[held]) for l2 in l2_grid]
  best = l2_grid[int(np.argmax(holdout))]
  full_x, test_x = evaluate._standardize(train_x, test_x)  # pylint: disable=protected-access
  model = make(best, len(full_x)).fit(full_x, train_y)
  return {'test_accuracy': model.score(test_x, test_y), 'best_l2': best,
          'holdout_accuracies': holdout, 'seconds': time.time() - start}


def _by_l2(l2_values, values):
  return ', '.join(f'{v:.4f} ({l2:g})' for l2, v in sorted(zip(l2_values,
                                                                values)))


_CACHED = ('train_x', 'train_y', 'test_x', 'test_y')


def _features(config, model, state):
  """Encoder features and labels of the train and test splits."""
  splits = {s: data.load_split('cifar10', s, None, False)
            for s in ('train', 'test')}
  start = time.time()
  encode = jax.jit(train._encoder_fn(model))  # pylint: disable=protected-access
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  feats = {s: evaluate.extract_features(functools.partial(encode, variables),
                                        images, config.probe.batch_size)
           for s, (images, _) in splits.items()}
  print(f"features {feats['train'].shape} in {time.time() - start:.0f} s",
        flush=True)
  return (feats['train'], splits['train'][1], feats['test'], splits['test'][1])


def main(argv):
  del argv
  config = FLAGS.config
  model, method = models.create_model(config), methods.get(config.method.name)
  tx, _ = optim.create_optimizer(config, steps_per_epoch=1)
  state = train.create_train_state(config, model, tx, method)
  if FLAGS.workdir:
    manager = ocp.CheckpointManager(f'{FLAGS.workdir}/checkpoints')
    state = train._restore_or_init(manager, state)  # pylint: disable=protected-access
  if FLAGS.features_cache and os.path.exists(FLAGS.features_cache):
    args = tuple(np.load(FLAGS.features_cache)[k] for k in _CACHED)
  else:
    args = _features(config, model, state)
    if FLAGS.features_cache:
      np.savez(FLAGS.features_cache, **dict(zip(_CACHED, args)))
  grid = tuple(config.probe.l2_grid)
  ours = evaluate.linear_probe(*args, l2_grid=grid,
                               num_steps=config.probe.num_steps)
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
