"""Proxy sweep of the `cpu` presets on an accelerator.

Each variant (a dict of config overrides on `configs/<config>.py:<preset>`)
trains for the same number of steps as the real CPU run would
(num_epochs x 50000 // batch_size), with the warmup scaled to match, on the
22k-image subset from prepare_subset.py, then runs the config's evaluators (the linear probe) on that subset and the
5k validation images carved from the train split (the test split is not in
the subset). One `RESULT {json}` line per variant, its score `acc` the
validation accuracy. Used to choose the `cpu` presets; the chosen presets
were then run for real on the CPU (README).

  python experiments/proxy_sweep/sweep.py SUBSET.npz VARIANTS.json WORKER NUM_WORKERS
"""
import importlib
import io
import json
import sys
import time

import jax
import numpy as np
from PIL import Image

from ssljax import data, evaluators, features, hosts
from ssljax import step as step_lib

REAL_TRAIN_SIZE = 50000


def decode(buffer, lengths):
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  return np.stack([
      np.asarray(Image.open(io.BytesIO(buffer[a:b].tobytes())))
      for a, b in zip(offsets[:-1], offsets[1:])])


def run_variant(variant, splits, mesh):
  variant = dict(variant)
  name = variant.pop('config', 'vicreg_tico')
  preset = variant.pop('preset', 'cpu')
  tag = variant.pop('tag')
  config = importlib.import_module(f'configs.{name}').get_config(preset)
  config.model.dtype = 'float32'  # As on the CPU.
  for key, value in variant.items():
    *path, last = key.split('.')
    node = config
    for part in path:
      node = node[part]
    node[last] = tuple(value) if isinstance(value, list) else value
  train_x = splits['train'][0]
  batch = config.train.batch_size
  steps_per_epoch, real_steps_per_epoch = len(train_x) // batch, REAL_TRAIN_SIZE // batch
  total = int(config.train.num_epochs * real_steps_per_epoch)
  config.train.num_epochs = total / steps_per_epoch + 1e-9
  config.optimizer.warmup_epochs *= real_steps_per_epoch / steps_per_epoch

  start = time.time()
  info = data.describe(train_x)
  train_step = step_lib.build(config, mesh, info)
  state = train_step.initial_state()
  images = train_step.device_split(train_x)
  losses, std = [], float('nan')
  labels = (None if train_step.model.classifier is None
            else train_step.device_split(splits['train'][1]))
  for step in range(train_step.total_steps):
    if step % train_step.steps_per_epoch == 0:
      perm = train_step.epoch_order(state.rng, step // train_step.steps_per_epoch)
    state, metrics = train_step.jitted(state, images, perm, labels)
    if step % 200 == 0 or step == train_step.total_steps - 1:
      losses.append(round(float(metrics['loss']), 3))
      std = float(metrics.get('normalized_embedding_std', float('nan')))
  train_seconds = time.time() - start
  results = evaluators.evaluate(features.encoder(config, mesh, info), state,
                                splits, evaluators.make_all(config))
  probe = results['linear_probe']
  return dict(tag=tag, acc=round(probe['test_accuracy'], 4),
              train_acc=round(probe['train_accuracy'], 4), l2=probe['best_l2'],
              steps=train_step.total_steps, std=round(std, 4), losses=losses,
              train_s=round(train_seconds),
              probe_s=round(time.time() - start - train_seconds),
              dim=results['features']['dim'])


def main(subset_path, variants_path, worker, num_workers):
  subset = np.load(subset_path)
  # The validation images in the place of the evaluators' test split.
  splits = {role: (decode(subset[f'{s}_png'], subset[f'{s}_len']),
                   subset[f'{s}_y'])
            for role, s in (('train', 'train'), ('test', 'validation'))}
  mesh = hosts.data_mesh(jax.devices()[:1])
  with open(variants_path) as f:
    variants = json.load(f)
  for i, variant in enumerate(variants):
    if i % num_workers == worker:
      print('RESULT', json.dumps(run_variant(variant, splits, mesh)), flush=True)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
