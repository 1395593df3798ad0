"""CIFAR-10 as uint8 arrays that live on the devices.

At CIFAR scale the whole split fits in device memory (150 MB), so we load each
split once, keep it there, and let the jitted train step gather its batch from a
per-epoch permutation: an epoch never waits on the host.
"""
import os

import jax
import numpy as np

from ssljax.errors import InputError

# Per-channel mean and std of the CIFAR-10 train split, in [0, 1] units
# (125.307, 122.950, 113.865) / 255 and (62.993, 62.089, 66.705) / 255.
CIFAR10_MEAN = np.array([0.491402, 0.482159, 0.446531], np.float32)
CIFAR10_STD = np.array([0.247032, 0.243485, 0.261588], np.float32)


class DatasetNotFoundError(InputError):
  """The dataset is neither prepared locally nor downloadable."""


def data_dir_in_use(data_dir: str | None) -> str:
  """Where TFDS looks: the config's data_dir, else $TFDS_DATA_DIR, else ~."""
  return (data_dir or os.environ.get('TFDS_DATA_DIR')
          or os.path.expanduser('~/tensorflow_datasets'))


def load_split(name: str, split: str, data_dir: str | None = None,
               download: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Loads a whole split as (uint8 images [N, H, W, 3], int32 labels [N]).

  Examples are put in the order of their `id` feature, which is the dataset's
  official order whatever order the prepared files store them in.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = data_dir_in_use(data_dir)
  try:
    ds = tfds.load(name, split=split, data_dir=where, download=download)
  except Exception as e:  # pylint: disable=broad-except
    # Offline TFDS raises a bare AssertionError ("could not find data in ...");
    # a failed download raises network errors. Both mean the same to the user.
    how = ('it could not be downloaded either' if download else
           'downloading is off (--config.data.download=False)')
    raise DatasetNotFoundError(
        f'TFDS dataset {name!r} (split {split!r}) was not found in {where!r} '
        f'and {how}: {type(e).__name__}: {e}. Point TFDS_DATA_DIR (or '
        '--config.data.data_dir) at a folder holding a prepared copy, e.g. '
        'TFDS_DATA_DIR=../shared/tensorflow_datasets on the project machines'
        f"{'' if download else ', or allow downloading with --config.data.download=True'}."
        ) from None
  images, labels, ids = [], [], []
  for batch in tfds.as_numpy(ds.batch(10_000)):
    images.append(batch['image'])
    labels.append(batch['label'])
    ids.append(batch['id'])
  order = np.argsort(np.concatenate(ids), kind='stable')
  return (np.concatenate(images)[order],
          np.concatenate(labels)[order].astype(np.int32))


def standardize(images: jax.Array) -> jax.Array:
  """Maps [0, 1] RGB to zero-mean unit-variance channels."""
  return (images - CIFAR10_MEAN) / CIFAR10_STD


def epoch_permutation(key: jax.Array, epoch: jax.Array, n: int) -> jax.Array:
  """The order of the train split in `epoch`: a pure function of key and epoch,
  so a resumed run sees exactly the data order of an uninterrupted one."""
  return jax.random.permutation(jax.random.fold_in(key, epoch), n)
