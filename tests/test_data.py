"""Loading CIFAR-10: the real prepared copy when present, mock data, and the
message when the data is missing."""
import os
import time
import shutil

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssljax import data
from ssljax.errors import InputError


def test_missing_dataset_says_where_it_looked_and_what_to_do(tmp_path):
  with pytest.raises(data.DatasetNotFoundError) as info:
    data.load_split('cifar10', 'test', str(tmp_path / 'empty'))
  message = str(info.value)
  assert str(tmp_path / 'empty') in message
  assert 'TFDS_DATA_DIR' in message and 'download=True' in message


@pytest.mark.parametrize('name, shape', [
    ('cifar10', (32, 32, 3)),
    ('stl10', (96, 96, 3)),  # One size, at most 128: kept.
    ('imagenette', (128, 128, 3)),  # Photos of every size: squares of 128.
    ('mnist', (28, 28, 3)),  # Grey: as RGB.
])
def test_mock_split_is_uint8_images_of_one_size_with_int_labels(name, shape):
  with tfds.testing.mock_data(num_examples=20):
    images, labels = data.load_split(name, 'train')
  assert images.shape == (20, *shape) and images.dtype == np.uint8
  assert labels.shape == (20,) and labels.dtype == np.int32


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isdir(os.path.join(os.environ.get('TFDS_DATA_DIR', '/none'),
                                   'cifar10')),
    reason='needs the prepared CIFAR-10 in $TFDS_DATA_DIR')
def test_real_cifar10_matches_the_official_release():
  images, labels = data.load_split('cifar10', 'train')
  assert images.shape == (50_000, 32, 32, 3)
  np.testing.assert_array_equal(np.bincount(labels), [5000] * 10)
  # Official order (data_batch_1 starts frog, truck, truck, deer, automobile).
  np.testing.assert_array_equal(labels[:5], [6, 9, 9, 4, 1])
  # The published per-channel statistics of the train split (0-255 units).
  info = data.describe(images)
  assert info.num_examples == 50_000
  np.testing.assert_allclose(info.mean * 255, [125.307, 122.950, 113.865],
                             atol=1e-3)
  np.testing.assert_allclose(info.std * 255, [62.993, 62.089, 66.705],
                             atol=1e-3)


def test_describe_gives_the_channel_mean_and_std():
  images = np.random.default_rng(0).integers(0, 256, (7, 5, 6, 3), np.uint8)
  images[..., 2] //= 4  # Channels with different statistics.
  info = data.describe(images)
  pixels = images.reshape(-1, 3).astype(np.float64) / 255
  assert info.num_examples == 7
  np.testing.assert_allclose(info.mean, pixels.mean(0), rtol=1e-6)
  np.testing.assert_allclose(info.std, pixels.std(0), rtol=1e-6)
  x = data.standardize_channels(data.to_unit_range(images), info)
  np.testing.assert_allclose(np.reshape(x, (-1, 3)).mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(np.reshape(x, (-1, 3)).std(0), 1, atol=1e-5)


def test_epoch_permutation_is_reproducible_and_changes_per_epoch():
  key = jax.random.PRNGKey(3)
  first = data.epoch_permutation(key, 0, 100)
  np.testing.assert_array_equal(first, data.epoch_permutation(key, 0, 100))
  assert sorted(np.asarray(first).tolist()) == list(range(100))
  assert not np.array_equal(first, data.epoch_permutation(key, 1, 100))


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  """A real prepared TFDS dataset (TFDS's own dummy_mnist, 20 examples,
  made offline) and the path of its train shard."""
  where = tmp_path_factory.mktemp('tfds')
  builder = tfds.testing.DummyMnist(data_dir=str(where))
  builder.download_and_prepare()
  return str(where), str(builder.info.splits['train'].filepaths[0])


def _copy_with(prepared, tmp_path, damage):
  where, shard = prepared
  copy = tmp_path / 'tfds'
  shutil.copytree(where, copy)
  path = str(copy / os.path.relpath(shard, where))
  damage(path)
  return str(copy)


@pytest.mark.parametrize('damage, words', [
    (lambda p: os.truncate(p, os.path.getsize(p) - 100),
     r'its shard files hold 2460 bytes where its dataset_info.json records '
     r'2560 \(20 examples\), so they were cut short'),
    (os.remove, '1 of its 1 shard files are missing'),
])
def test_a_cut_or_missing_shard_is_named_before_reading(prepared, tmp_path,
                                                       damage, words):
  copy = _copy_with(prepared, tmp_path, damage)
  with pytest.raises(data.DatasetDamagedError,
                     match=f"'dummy_mnist' split 'train' is damaged: {words}"
                     ) as raised:
    data.load_split('dummy_mnist', 'train', copy)
  assert '\n' not in str(raised.value) and 'again into' in str(raised.value)


def test_corrupt_bytes_in_a_shard_are_named_as_damage(prepared, tmp_path):
  def corrupt(path):
    with open(path, 'r+b') as f:
      f.seek(os.path.getsize(path) // 2)
      f.write(b'\xa5' * 64)
  copy = _copy_with(prepared, tmp_path, corrupt)
  with pytest.raises(data.DatasetDamagedError,
                     match=r"'train' in .* is damaged: DataLossError: "
                     r'corrupted record at \d+\. Prepare \(or copy\) it '
                     'again') as raised:
    data.load_split('dummy_mnist', 'train', copy)
  assert '\n' not in str(raised.value)


def test_decoded_arrays_are_cached_checked_and_rebuilt_when_damaged(
    prepared, tmp_path, monkeypatch, capsys):
  where, shard = prepared
  images, labels = data.load_split('dummy_mnist', 'train', where)  # No cache.
  monkeypatch.setenv('SSLJAX_CACHE_DIR', str(tmp_path / 'cache'))
  assert not (tmp_path / 'cache').exists()
  folder = data.array_cache('dummy_mnist', 'train', where)
  for _ in range(2):  # Decoded and cached, then read back.
    cached = data.load_split('dummy_mnist', 'train', where)
    np.testing.assert_array_equal(cached[0], images)
    np.testing.assert_array_equal(cached[1], labels)
  assert sorted(os.listdir(folder)) == ['checksums.json', 'images.npy',
                                        'labels.npy']
  decoded = []
  monkeypatch.setattr(data, '_decode', lambda *a: decoded.append(a) or (
      images, labels))
  data.load_split('dummy_mnist', 'train', where)
  assert not decoded  # Read from the cache: nothing decoded.
  with open(os.path.join(folder, 'images.npy'), 'r+b') as f:
    f.seek(-5, os.SEEK_END)
    f.write(b'\x01\x02\x03\x04\x05')  # Damaged bytes: still loads as .npy.
  data.load_split('dummy_mnist', 'train', where)
  assert len(decoded) == 1  # Detected, decoded again and rewritten,
  assert "are damaged (['images'])" in capsys.readouterr().out
  data.load_split('dummy_mnist', 'train', where)
  assert len(decoded) == 1  # and read back intact.
  os.utime(shard, ns=(0, 0))  # Prepared again: a new entry.
  assert data.array_cache('dummy_mnist', 'train', where) != folder


def test_grey_images_load_as_rgb_and_unlabelled_arrays_cache(prepared,
                                                             tmp_path):
  images, _ = data.load_split('dummy_mnist', 'train', prepared[0])
  assert images.shape == (20, 28, 28, 3)  # MNIST's one channel, thrice.
  np.testing.assert_array_equal(images[..., 0], images[..., 2])
  data.write_array_cache(str(tmp_path / 'entry'), images, None)
  cached, labels = data.read_array_cache(str(tmp_path / 'entry'))
  np.testing.assert_array_equal(cached, images)
  assert labels is None


def test_metadata_that_is_not_json_is_named_as_damage(prepared, tmp_path):
  where, shard = prepared
  copy = _copy_with(prepared, tmp_path, lambda path: None)
  info = os.path.join(os.path.dirname(os.path.join(
      copy, os.path.relpath(shard, where))), 'dataset_info.json')
  with open(info, 'w') as f:
    f.write('{"name": "dummy_mnist", cut short')
  with pytest.raises(data.DatasetDamagedError,
                     match=r"'dummy_mnist' is damaged: .*dataset_info.json is "
                     r'not readable JSON \(.*\)\. Prepare \(or copy\) it again'
                     ) as raised:
    data.load_split('dummy_mnist', 'train', copy)
  assert '\n' not in str(raised.value)


def test_what_a_killed_cache_writer_left_is_removed_by_the_next(tmp_path):
  """A writer killed mid-entry leaves its temporary folder; the next write
  removes it once it is older than any live writer's, and only then."""
  left, live = tmp_path / '.new-killed', tmp_path / '.new-writing'
  for folder in (left, live):
    folder.mkdir()
    (folder / 'images.npy').write_bytes(b'\0' * 1000)
  old = time.time() - data.STALE_SECONDS - 60
  os.utime(left, (old, old))
  data.write_array_cache(str(tmp_path / 'entry'),
                         np.zeros((2, 4, 4, 3), np.uint8), None)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['.new-writing',
                                                        'entry']


def test_a_run_scored_on_validation_never_reads_the_test_split(prepared,
                                                               monkeypatch):
  """score_on='validation': every choice made on such runs is made without
  the test split, which is not even read; the validation images are a fixed
  part of the train split, the same whatever the run's seed."""
  from configs import vicreg  # pylint: disable=g-import-not-at-top
  config = vicreg.get_config('smoke')
  config.data.name, config.data.data_dir = 'dummy_mnist', prepared[0]
  config.data.score_on, config.data.validation_size = 'validation', 5
  read, load_split = [], data.load_split
  monkeypatch.setattr(data, 'load_split', lambda name, split, **kw: (
      read.append(split), load_split(name, split, **kw))[1])
  splits = data.load_splits(config)
  assert read == ['train']
  (train, train_labels), (validation, validation_labels) = (
      splits['train'], splits['test'])
  assert len(train) == 15 and len(validation) == len(validation_labels) == 5
  images, labels = load_split('dummy_mnist', 'train', prepared[0])
  # A partition of the train split: each image (with its label) once.
  as_rows = lambda x, y: sorted(i.tobytes() + bytes([int(l)])
                                for i, l in zip(x, y))
  assert as_rows(np.concatenate([train, validation]), np.concatenate(
      [train_labels, validation_labels])) == as_rows(images, labels)
  config.seed = 7
  np.testing.assert_array_equal(data.load_splits(config)['test'][0],
                                validation)
  config.data.score_on = 'tset'
  with pytest.raises(InputError, match=r"score_on='tset'; allowed values: "
                     r"\['test', 'validation'\]"):
    data.load_splits(config)


def test_the_readout_is_chosen_without_reading_the_test_split(prepared,
                                                              monkeypatch):
  """experiments/choose_readout.py scores its candidates on the validation
  split of any run, one scored on its test split included."""
  from configs import vicreg  # pylint: disable=g-import-not-at-top
  from experiments import choose_readout  # pylint: disable=g-import-not-at-top
  config = vicreg.get_config('smoke')
  config.data.name, config.data.data_dir = 'dummy_mnist', prepared[0]
  config.data.validation_size = 5
  assert config.data.score_on == 'test'
  read, load_split = [], data.load_split
  monkeypatch.setattr(data, 'load_split', lambda name, split, **kw: (
      read.append(split), load_split(name, split, **kw))[1])
  splits = choose_readout.validation_splits(config)
  assert read == ['train'] and len(splits['test'][0]) == 5


def test_the_proxy_sweep_is_scored_on_validation_never_on_test(tmp_path,
                                                              monkeypatch):
  """experiments/proxy_sweep/prepare_subset.py, what the sweep that chose
  the `cpu` presets trains and scores on: only the train split is read,
  and the scoring images are the carved validation split."""
  from experiments.proxy_sweep import prepare_subset  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (40, 8, 8, 3), np.uint8)
  labels = rng.integers(0, 10, 40).astype(np.int32)
  read = []
  monkeypatch.setattr(data, 'load_split', lambda name, split, **kw: (
      read.append(split), (images, labels))[1])
  monkeypatch.setattr(prepare_subset, 'NUM_TRAIN', 20)
  monkeypatch.setattr(prepare_subset, 'NUM_VALIDATION', 6)
  prepare_subset.main(str(tmp_path / 'subset.npz'))
  assert read == ['train']
  subset = np.load(tmp_path / 'subset.npz')
  assert not [k for k in subset.files if 'test' in k]
  (_, _), (val_x, val_y) = data.carve_validation(images, labels, 6)
  np.testing.assert_array_equal(subset['validation_y'], val_y)
  np.testing.assert_array_equal(
      prepare_subset.encode(val_x)[1], subset['validation_len'])
