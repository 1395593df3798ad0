"""Loading CIFAR-10: the real prepared copy when present, mock data, and the
message when the data is missing."""
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssljax import data


def test_missing_dataset_says_where_it_looked_and_what_to_do(tmp_path):
  with pytest.raises(data.DatasetNotFoundError) as info:
    data.load_split('cifar10', 'test', str(tmp_path / 'empty'))
  message = str(info.value)
  assert str(tmp_path / 'empty') in message
  assert 'TFDS_DATA_DIR' in message and 'download=True' in message


def test_mock_split_is_uint8_images_with_int_labels():
  with tfds.testing.mock_data(num_examples=20):
    images, labels = data.load_split('cifar10', 'train')
  assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
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
