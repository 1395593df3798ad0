"""Writes the proxy sweep's CIFAR-10 subset (22,000 train / 5,000 test images,
fixed seed) as PNG bytes: lossless, and small enough (61 MB) to carry to an
accelerator machine that has no TFDS copy.

  TFDS_DATA_DIR=../shared/tensorflow_datasets python experiments/proxy_sweep/prepare_subset.py OUT.npz
"""
import io
import sys

import numpy as np
from PIL import Image

from ssljax import data

NUM_TRAIN, NUM_TEST = 22000, 5000


def encode(images):
  out = []
  for image in images:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG', optimize=True)
    out.append(buffer.getvalue())
  return np.frombuffer(b''.join(out), np.uint8), np.array([len(b) for b in out])


def main(path):
  train_x, train_y = data.load_split('cifar10', 'train')
  test_x, test_y = data.load_split('cifar10', 'test')
  rng = np.random.default_rng(0)
  train_idx = np.sort(rng.permutation(len(train_x))[:NUM_TRAIN])
  test_idx = np.sort(rng.permutation(len(test_x))[:NUM_TEST])
  train_png, train_len = encode(train_x[train_idx])
  test_png, test_len = encode(test_x[test_idx])
  np.savez(path, train_png=train_png, train_len=train_len,
           train_y=train_y[train_idx], test_png=test_png, test_len=test_len,
           test_y=test_y[test_idx])


if __name__ == '__main__':
  main(sys.argv[1])
