"""Writes the proxy sweep's CIFAR-10 subset as PNG bytes (lossless, and small
enough, ~61 MB, to carry to an accelerator machine that has no TFDS copy):
the 5,000 validation images carved from the train split
(`data.carve_validation`, the same for every run), which score the
variants, and 22,000 of the other train images (fixed seed), which train
them. The test split is not read: what the sweep chooses cannot depend on
it. (Sweeps before 2026-12-07 scored 5,000 test images.)

  TFDS_DATA_DIR=../shared/tensorflow_datasets python experiments/proxy_sweep/prepare_subset.py OUT.npz
"""
import io
import sys

import numpy as np
from PIL import Image

from ssljax import data

NUM_TRAIN, NUM_VALIDATION = 22000, 5000


def encode(images):
  out = []
  for image in images:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG', optimize=True)
    out.append(buffer.getvalue())
  return np.frombuffer(b''.join(out), np.uint8), np.array([len(b) for b in out])


def main(path):
  (train_x, train_y), (val_x, val_y) = data.carve_validation(
      *data.load_split('cifar10', 'train'), NUM_VALIDATION)
  rng = np.random.default_rng(0)
  train_idx = np.sort(rng.permutation(len(train_x))[:NUM_TRAIN])
  train_png, train_len = encode(train_x[train_idx])
  val_png, val_len = encode(val_x)
  np.savez(path, train_png=train_png, train_len=train_len,
           train_y=train_y[train_idx], validation_png=val_png,
           validation_len=val_len, validation_y=val_y)


if __name__ == '__main__':
  main(sys.argv[1])
