"""Datasets (CIFAR-10, any TFDS image dataset, a folder of images, the
unpacked arrays of one) as uint8 arrays that live on the devices.

At CIFAR scale the whole split fits in device memory (150 MB), so we load each
split once, keep it there (its rows divided over the devices,
`Pipeline.device_split`), and let the jitted train step gather its batch from a
per-epoch permutation: an epoch never waits on the host.
"""
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssljax import image_folder
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


def _tfds(name: str):
  """tensorflow_datasets, loaded at the first TFDS dataset; where it is not
  installed (an accelerator's image), one message naming the way round."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError(
        f'TFDS is not installed here, so the TFDS dataset {name!r} cannot be '
        'read. Pack its arrays where it is prepared (python -m ssljax.pack) '
        'and train on them with --config.data.name=arrays:PATH '
        '(docs/accelerators.md); nothing was started.') from None
  return tfds


def _prepared(name: str, split: str, where: str):
  """(the dataset's folder, the split's shard paths) where `where` holds a
  prepared copy of it, else None (tfds.load then says what is wrong)."""
  tfds = _tfds(name)
  try:
    builder = tfds.builder(name, data_dir=where)
    info = builder.info.splits[split]
    paths = [os.fspath(p) for p in info.filepaths]
  except Exception:  # pylint: disable=broad-except
    _check_metadata(name, where)
    return None
  if not os.path.exists(os.path.join(builder.data_dir, 'dataset_info.json')):
    return None
  return builder, info, paths


def _check_metadata(name: str, where: str):
  """Refuses a prepared copy of `name` in `where` whose dataset_info.json
  cannot be read as JSON, naming it (TFDS would report the dataset as not
  found, its cause deep in the message)."""
  folder = os.path.join(where, name.split(':')[0])
  for path in sorted(glob.glob(os.path.join(folder, '**', 'dataset_info.json'),
                               recursive=True)):
    try:
      with open(path, encoding='utf-8') as f:
        json.load(f)
    except (OSError, ValueError) as e:
      raise DatasetDamagedError(
          f'TFDS dataset {name!r} is damaged: {path} is not readable JSON '
          f'({e}). {_again(where)}') from None


def check_shards(name: str, split: str, where: str):
  """Refuses a prepared split whose shard files are missing, or whose
  TFRecord files are not the size its dataset_info.json records (a copy
  cut short, or altered), before anything is read. A dataset not prepared
  in `where` is left to tfds.load to report."""
  prepared = _prepared(name, split, where)
  if prepared is None:
    return
  builder, info, paths = prepared
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


# Bump when what the cache stores changes.
ARRAY_CACHE_FORMAT = 1


def array_cache(name: str, split: str, where: str) -> str | None:
  """The folder that caches the decoded arrays of a prepared split, under
  $SSLJAX_CACHE_DIR/arrays (the commands set it: `--cache_dir`), or None
  where there is no cache directory or nothing prepared to key it on. The
  key names the dataset's folder, its dataset_info.json and its shard
  files' sizes and times, so a dataset prepared again gets a new entry."""
  root = os.environ.get('SSLJAX_CACHE_DIR')
  prepared = root and _prepared(name, split, where)
  if not prepared or not all(map(os.path.exists, prepared[2])):
    return None
  builder, _, paths = prepared
  with open(os.path.join(builder.data_dir, 'dataset_info.json'), 'rb') as f:
    info = f.read().decode()
  shards = [(os.path.basename(p), os.path.getsize(p), os.stat(p).st_mtime_ns)
            for p in paths]
  key = hashlib.sha256(json.dumps(
      [ARRAY_CACHE_FORMAT, name, split, os.path.realpath(builder.data_dir),
       info, shards]).encode()).hexdigest()[:16]
  readable = re.sub(r'[^\w.-]', '_', f'{name}-{split}')
  return os.path.join(root, 'arrays', f'{readable}-{key}')


def _checksum(array: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def checked_arrays(folder: str) -> tuple[dict | None, list[str]]:
  """({part: array}, []) of a folder `write_array_cache` wrote, each array
  checked against the checksum written with it; (None, what is wrong)
  where it is not there, damaged or unreadable."""
  if not os.path.exists(os.path.join(folder, 'checksums.json')):
    return None, [f'no {os.path.join(folder, "checksums.json")}']
  try:
    with open(os.path.join(folder, 'checksums.json')) as f:
      expected = json.load(f)
    arrays = {part: np.load(os.path.join(folder, f'{part}.npy'))
              for part in expected}
    damaged = [part for part, array in arrays.items()
               if _checksum(array) != expected[part]]
  except (OSError, ValueError) as e:
    return None, [f'unreadable: {e}']
  if 'images' not in expected:
    damaged.append('no images')
  return (None if damaged else arrays), damaged


def read_array_cache(folder: str
                     ) -> tuple[np.ndarray, np.ndarray | None] | None:
  """(images, labels or None) from the cache entry `folder`; None where it
  is not there, or (with a note, and removed) damaged."""
  if not os.path.exists(os.path.join(folder, 'checksums.json')):
    return None
  arrays, damaged = checked_arrays(folder)
  if arrays is None:
    print(f'Note: the cached arrays in {folder} are damaged ({damaged}); '
          'decoding the prepared dataset again.', flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return None
  return arrays['images'], arrays.get('labels')


# `config.data.name` 'arrays:PATH': the arrays of a dataset prepared on
# another machine, put together by `python -m ssljax.pack --unpack`; read
# without TFDS or TensorFlow.
ARRAYS_PREFIX = 'arrays:'


def arrays_path(name: str) -> str | None:
  """The folder `config.data.name` names with ARRAYS_PREFIX, else None."""
  return (os.path.expanduser(name[len(ARRAYS_PREFIX):])
          if name.startswith(ARRAYS_PREFIX) else None)


def load_arrays(folder: str, split: str
                ) -> tuple[np.ndarray, np.ndarray | None]:
  """(images, labels or None) of `split` from an unpacked folder, checked."""
  arrays, wrong = checked_arrays(os.path.join(folder, split))
  if arrays is None:
    raise DatasetDamagedError(
        f'The {split} split in {folder} cannot be read ({"; ".join(wrong)}). '
        'Put it together again: python -m ssljax.pack --unpack '
        f'--parts=PARTS --arrays={folder}; nothing was started.')
  return arrays['images'], arrays.get('labels')


# Seeds the one permutation that carves the validation split.
VALIDATION_SEED = 20261207

# A cache entry's temporary folder this old was left by a killed writer.
STALE_SECONDS = 3600


def write_array_cache(folder: str, images: np.ndarray,
                      labels: np.ndarray | None):
  """Writes the arrays and their checksums to a new folder, then renames it
  into place: a reader sees a whole entry or none. Where it cannot be
  written (a full disk, a read-only cache), the run goes on without it."""
  parts = {'images': images, **({} if labels is None else {'labels': labels})}
  try:
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    for stale in glob.glob(os.path.join(os.path.dirname(folder), '.new-*')):
      # What a killed writer left (another may be writing its own now).
      if time.time() - os.path.getmtime(stale) > STALE_SECONDS:
        shutil.rmtree(stale, ignore_errors=True)
    new = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix='.new-')
    for part, array in parts.items():
      np.save(os.path.join(new, f'{part}.npy'), array)
    with open(os.path.join(new, 'checksums.json'), 'w') as f:
      json.dump({part: _checksum(a) for part, a in parts.items()}, f)
    os.rename(new, folder)
  except OSError as e:  # Full, read-only, or written by another process.
    shutil.rmtree(locals().get('new', ''), ignore_errors=True)
    if not os.path.exists(os.path.join(folder, 'checksums.json')):
      print(f'Note: the decoded arrays could not be cached in {folder} '
            f'({e.strerror or e}); the next run decodes them again.',
            flush=True)


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
               download: bool = False
               ) -> tuple[np.ndarray, np.ndarray | None]:
  """Loads a whole split as (uint8 images [N, H, W, 3], int32 labels [N], or
  None for a dataset without labels).

  Examples are put in the order of their `id` feature, which is the dataset's
  official order whatever order the prepared files store them in. Images of
  varying sizes, or larger than image_folder.MAX_SIZE, are brought to one
  size on load (`_square_side`), so that the split is one array. Where a
  cache directory is set (`array_cache`), the decoded arrays are kept there
  and read back from the second time on, checked against their checksums.
  """
  where = data_dir_in_use(data_dir)
  cache = array_cache(name, split, where)
  cached = cache and read_array_cache(cache)
  if cached:
    return cached
  images, labels = _decode(name, split, where, download)
  if cache:
    write_array_cache(cache, images, labels)
  return images, labels


def _decode(name: str, split: str, where: str, download: bool
            ) -> tuple[np.ndarray, np.ndarray]:
  """The split read and decoded through tf.data, in the order of `id`
  where the dataset has one."""
  tfds = _tfds(name)
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
  side = _square_side(ds.element_spec['image'].shape)
  if side:
    ds = ds.map(lambda example: {**example,
                                 'image': _centre_square(example['image'],
                                                         side)})
  images, labels, ids = [], [], []
  try:
    for batch in tfds.as_numpy(ds.batch(10_000)):
      images.append(batch['image'])
      if 'label' in batch:  # Else an unlabelled dataset.
        labels.append(batch['label'])
      ids.append(batch.get('id', np.array([], np.int64)))
  except Exception as e:  # pylint: disable=broad-except
    if type(e).__name__ not in ('DataLossError', 'InvalidArgumentError'):
      raise  # A bug, not the data.
    raise DatasetDamagedError(
        f'TFDS dataset {name!r} split {split!r} in {where!r} is damaged: '
        f'{type(e).__name__}: {_tf_message(e)}. {_again(where)}') from None
  ids = np.concatenate(ids)  # Where the dataset has no `id`: file order.
  images = np.concatenate(images)
  if images.shape[-1] == 1:  # Grey (MNIST's): as RGB, as the models take.
    images = np.repeat(images, 3, axis=-1)
  order = np.argsort(ids, kind='stable') if len(ids) else np.arange(
      len(images))
  return images[order], (np.concatenate(labels)[order].astype(np.int32)
                         if labels else None)


def _square_side(shape) -> int | None:
  """The side a TFDS dataset's images are brought to on load (centre
  squares, as a folder's): None where they have one size, of at most
  image_folder.MAX_SIZE, and are kept as they are."""
  height, width = shape[0], shape[1]
  if height is not None and width is not None and max(
      height, width) <= image_folder.MAX_SIZE:
    return None
  known = [s for s in (height, width) if s is not None]
  return min([image_folder.MAX_SIZE, *known])


def _centre_square(image, side: int):
  """tf.data: the centred square of a uint8 image, resized to side x
  side."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  crop = tf.minimum(height, width)
  image = tf.image.crop_to_bounding_box(image, (height - crop) // 2,
                                        (width - crop) // 2, crop, crop)
  image = tf.image.resize(image, (side, side), method='bicubic',
                          antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


# The split a run is scored on (config.data.score_on).
SCORED_SPLITS = ('test', 'validation')


def load_splits(config) -> dict:
  """{'train', 'test'}: (uint8 images, int32 labels) of `config.data`: a
  TFDS dataset, a folder of images (`ssljax.image_folder`) or the arrays
  `python -m ssljax.pack` unpacked (`arrays_path`), whose labels
  are None where it has none. With `config.data.score_on='validation'`,
  'test' is the validation split (`carve_validation`) and 'train' the rest
  of the train split; the test split is not read at all, so that nothing
  chosen on such runs can depend on it."""
  if config.data.score_on not in SCORED_SPLITS:
    raise InputError(f'config.data.score_on={config.data.score_on!r}; '
                     f'allowed values: {list(SCORED_SPLITS)}.')
  if image_folder.path_of(config.data.name):
    read = functools.partial(image_folder.load_split, config.data.name)
  elif arrays_path(config.data.name):
    read = functools.partial(load_arrays, arrays_path(config.data.name))
  else:
    read = functools.partial(load_split, config.data.name,
                             data_dir=config.data.data_dir or None,
                             download=config.data.download)
  if config.data.score_on == 'test':
    return {split: read(split) for split in ('train', 'test')}
  train, validation = carve_validation(*read('train'),
                                       config.data.validation_size)
  return {'train': train, 'test': validation}


def carve_validation(images: np.ndarray, labels: np.ndarray | None,
                     size: int) -> tuple[tuple, tuple]:
  """((images, labels) of the rest, (images, labels) of the validation
  split): `size` images of the train split, the same for every run (a fixed
  permutation, not the run's seed), so that runs compared on it are scored
  on the same images; in their stored order otherwise."""
  if labels is None:
    raise InputError("config.data.score_on='validation' scores labelled "
                     'images, and this dataset has no labels.')
  if not 0 < size < len(images):
    raise InputError(f'config.data.validation_size={size} must be between 1 '
                     f'and the train split\'s {len(images) - 1} images.')
  chosen = np.zeros(len(images), bool)
  chosen[np.random.default_rng(VALIDATION_SEED).permutation(len(images))[
      :size]] = True
  return ((images[~chosen], labels[~chosen]),
          (images[chosen], labels[chosen]))


def class_names(name: str, data_dir: str | None, num_classes: int
                ) -> list[str]:
  """The names of the dataset's classes, from its prepared TFDS metadata (no
  data is read), a folder's class sub-folders or an unpacked dataset's
  dataset.json; the class numbers as text
  where there are none."""
  try:
    if image_folder.path_of(name):
      names = image_folder.class_names(name)
    elif arrays_path(name):
      with open(os.path.join(arrays_path(name), 'dataset.json')) as f:
        names = json.load(f)['class_names']
    else:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
      names = tfds.builder(name, data_dir=data_dir_in_use(
          data_dir)).info.features['label'].names
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
