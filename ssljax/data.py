"""CIFAR-10 as uint8 arrays that live on the devices.

At CIFAR scale the whole split fits in device memory (150 MB), so we load each
split once, keep it there (its rows divided over the devices,
`Pipeline.device_split`), and let the jitted train step gather its batch from a
per-epoch permutation: an epoch never waits on the host.
"""
import os
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.errors import InputError


class SplitInfo(NamedTuple):
  """What a run needs to know of its train split: its size (for the length
  of an epoch), its per-channel mean and std in [0, 1] units (to
  standardise the network's inputs), and its number of classes (for the
  online probe; 0 when the labels were not seen)."""
  num_examples: int
  mean: np.ndarray
  std: np.ndarray
  num_classes: int = 0


class DatasetNotFoundError(InputError):
  """The dataset is neither prepared locally nor downloadable."""


class DatasetDamagedError(InputError):
  """The prepared files of a split are missing, truncated or corrupt."""


# A TFRecord frames each example with its length and two CRC32C checksums.
TFRECORD_FRAMING_BYTES = 16


def check_shards(name: str, split: str, where: str):
  """Refuses a prepared split whose shard files are missing, or whose
  TFRecord files are not the size its dataset_info.json records (a copy
  cut short, or altered), before anything is read. A dataset not prepared
  in `where` is left to tfds.load to report."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(name, data_dir=where)
    info = builder.info.splits[split]
    paths = [os.fspath(p) for p in info.filepaths]
  except Exception:  # pylint: disable=broad-except
    return  # Not prepared: tfds.load says so.
  if not os.path.exists(os.path.join(builder.data_dir, 'dataset_info.json')):
    return
  present = [p for p in paths if os.path.exists(p)]
  if len(present) < len(paths):
    missing = sorted(set(paths) - set(present))
    raise DatasetDamagedError(
        f'TFDS dataset {name!r} split {split!r} is damaged: {len(missing)} of '
        f'its {len(paths)} shard files are missing ({missing[0]}...). '
        + _again(where))
  if builder.info.file_format.value == 'tfrecord' and info.num_bytes:
    expected = int(info.num_bytes) + TFRECORD_FRAMING_BYTES * info.num_examples
    actual = sum(os.path.getsize(p) for p in paths)
    if actual != expected:
      raise DatasetDamagedError(
          f'TFDS dataset {name!r} split {split!r} is damaged: its shard files '
          f'hold {actual} bytes where its dataset_info.json records '
          f'{expected} ({info.num_examples} examples), so they were cut '
          f'short or altered ({paths[0]}). {_again(where)}')


def data_dir_in_use(data_dir: str | None) -> str:
  """Where TFDS looks: the config's data_dir, else $TFDS_DATA_DIR, else ~."""
  return (data_dir or os.environ.get('TFDS_DATA_DIR')
          or os.path.expanduser('~/tensorflow_datasets'))


def _again(where: str) -> str:
  return f'Prepare (or copy) it again into {where}; nothing was started.'


def _tf_message(error: Exception) -> str:
  """A TensorFlow error's own words, without the op and function names."""
  text = re.sub(r'\{\{.*?\}\}|\[Op:.*?\]|name:', '', str(error))
  return ' '.join(text.split())[:200]


def load_split(name: str, split: str, data_dir: str | None = None,
               download: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Loads a whole split as (uint8 images [N, H, W, 3], int32 labels [N]).

  Examples are put in the order of their `id` feature, which is the dataset's
  official order whatever order the prepared files store them in.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = data_dir_in_use(data_dir)
  check_shards(name, split, where)
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
  try:
    for batch in tfds.as_numpy(ds.batch(10_000)):
      images.append(batch['image'])
      labels.append(batch['label'])
      ids.append(batch['id'])
  except Exception as e:  # pylint: disable=broad-except
    if type(e).__name__ not in ('DataLossError', 'InvalidArgumentError'):
      raise  # A bug, not the data.
    raise DatasetDamagedError(
        f'TFDS dataset {name!r} split {split!r} in {where!r} is damaged: '
        f'{type(e).__name__}: {_tf_message(e)}. {_again(where)}') from None
  order = np.argsort(np.concatenate(ids), kind='stable')
  return (np.concatenate(images)[order],
          np.concatenate(labels)[order].astype(np.int32))


def load_splits(config) -> dict:
  """{'train', 'test'}: (uint8 images, int32 labels) of `config.data`."""
  return {split: load_split(config.data.name, split,
                            config.data.data_dir or None, config.data.download)
          for split in ('train', 'test')}


def class_names(name: str, data_dir: str | None, num_classes: int
                ) -> list[str]:
  """The names of the dataset's classes, from its prepared TFDS metadata (no
  data is read); the class numbers as text where there are none."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(name, data_dir=data_dir_in_use(data_dir))
    names = builder.info.features['label'].names
  except Exception:  # pylint: disable=broad-except
    names = []
  return list(names) if len(names) == num_classes else [
      str(c) for c in range(num_classes)]


def describe(images: np.ndarray, labels: np.ndarray | None = None
             ) -> SplitInfo:
  """The SplitInfo of uint8 images [N, H, W, C] and their integer labels,
  exact: from each channel's histogram of the 256 values."""
  counts = np.stack([np.bincount(images[..., c].ravel(), minlength=256)
                     for c in range(images.shape[-1])])
  values = np.arange(256) / 255.0
  total = counts.sum(axis=1)
  mean = counts @ values / total
  std = np.sqrt(counts @ values ** 2 / total - mean ** 2)
  num_classes = 0 if labels is None else int(labels.max()) + 1
  return SplitInfo(len(images), mean.astype(np.float32),
                   std.astype(np.float32), num_classes)


def to_unit_range(images: jax.Array) -> jax.Array:
  """uint8 images -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def standardize_channels(images: jax.Array, info: SplitInfo) -> jax.Array:
  """Maps [0, 1] RGB to channels of zero mean and unit variance over the
  train split."""
  return (images - info.mean) / info.std


def epoch_permutation(key: jax.Array, epoch: jax.Array, n: int) -> jax.Array:
  """The order of the train split in `epoch`: a pure function of key and epoch,
  so a resumed run sees exactly the data order of an uninterrupted one."""
  return jax.random.permutation(jax.random.fold_in(key, epoch), n)
