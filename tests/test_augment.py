"""Augmentation: shapes and ranges, key semantics, per-image randomness, and
each op doing what it says on known inputs."""
import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax import augment
from ssljax import data
from ssljax.errors import InputError


def _images(n=8, size=32, seed=0):
  """Random images as the train step hands them over: float32 in [0, 1]."""
  return data.to_unit_range(jnp.asarray(np.random.default_rng(seed).integers(
      0, 256, (n, size, size, 3), dtype=np.uint8)))


def _config(**overrides):
  """Every random op off unless overridden; the crop is the whole image."""
  cfg = augment.default_config()
  for field in augment.PER_VIEW_FIELDS:
    cfg[field] = (0.0, 0.0)
  cfg.crop_scale, cfg.crop_ratio = (1.0, 1.0), (1.0, 1.0)
  cfg.update(overrides)
  return cfg


def test_views_shape_dtype_range_and_keys():
  images = _images()
  cfg = augment.default_config()
  v1, v2 = augment.views(jax.random.PRNGKey(0), images, cfg)
  for v in (v1, v2):
    assert v.shape == (8, 32, 32, 3) and v.dtype == jnp.float32
    assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
  assert not np.allclose(v1, v2)
  again = augment.views(jax.random.PRNGKey(0), images, cfg)
  np.testing.assert_array_equal(v1, again[0])
  np.testing.assert_array_equal(v2, again[1])
  other = augment.views(jax.random.PRNGKey(1), images, cfg)
  assert not np.allclose(v1, other[0])


def test_each_image_gets_its_own_transform():
  # Eight copies: the shapes of the test above, whose ops are compiled.
  same = jnp.repeat(_images(1), 8, axis=0)
  v1, _ = augment.views(jax.random.PRNGKey(0), same, augment.default_config())
  flat = np.asarray(v1).reshape(8, -1)
  distinct = {tuple(np.round(row[:50], 5)) for row in flat}
  assert len(distinct) == 8


def test_whole_image_crop_is_the_identity():
  images = _images(4)
  v1, _ = augment.views(jax.random.PRNGKey(0), images, _config())
  np.testing.assert_allclose(v1, images, atol=1e-5)


def test_crop_resamples_the_sampled_box():
  # A horizontal ramp: pixel value = column index. A crop of area fraction
  # s and aspect ratio 1 spans sqrt(s) of the width, so the resampled ramp
  # rises by sqrt(s) * 31 / 32 per output column... over the whole output.
  ramp = jnp.broadcast_to(jnp.arange(32.0)[None, :, None], (32, 32, 3)) / 32
  for seed in range(5):
    out = augment.random_resized_crop(jax.random.PRNGKey(seed), ramp, 32,
                                      (0.25, 0.25), (1.0, 1.0))
    row = np.asarray(out[16, :, 0])
    slope = np.diff(row[4:-4]).mean() * 32  # input columns per output column
    np.testing.assert_allclose(slope, 0.5, atol=1e-3)
    assert row[0] >= 0 and row[-1] <= 31 / 32 + 1e-6


def test_flip_always_on_flips():
  images = _images(4)
  v1, _ = augment.views(jax.random.PRNGKey(0), images, _config(flip_prob=(1.0, 1.0)))
  np.testing.assert_allclose(v1, images[:, :, ::-1], atol=1e-5)


def test_hue_rotation_on_a_known_colour():
  red = jnp.zeros((4, 4, 3)).at[..., 0].set(1.0)
  green = pix.adjust_hue(red, 1 / 3)
  np.testing.assert_allclose(green[0, 0], [0.0, 1.0, 0.0], atol=1e-5)
  # Jitter with hue only: a saturated colour changes hue, not brightness.
  images = jnp.broadcast_to(jnp.float32([1, 0, 0]), (8, 8, 8, 3))
  v1, _ = augment.views(jax.random.PRNGKey(0), images, _config(
      jitter_prob=(1.0, 1.0), brightness=0.0, contrast=0.0, saturation=0.0, hue=0.1))
  pixel = np.asarray(v1[:, 0, 0])
  assert np.all(pixel.max(axis=1) > 0.99)  # Value of an HSV rotation kept.
  assert np.std(pixel[:, 1] - pixel[:, 2]) > 0.05  # Hue moved both ways.


def test_grayscale_and_solarize_per_view():
  images = _images(4)
  gray, _ = augment.views(jax.random.PRNGKey(0), images,
                          _config(grayscale_prob=(1.0, 1.0)))
  np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-6)
  plain, solar = augment.views(jax.random.PRNGKey(0), images,
                               _config(solarize_prob=(0.0, 1.0)))
  np.testing.assert_allclose(plain, images, atol=1e-5)
  np.testing.assert_allclose(solar, jnp.where(images < 0.5, images,
                                              1 - images), atol=1e-5)


def test_blur_smooths():
  images = _images(4)
  blurred, _ = augment.views(jax.random.PRNGKey(0), images,
                             _config(blur_prob=(1.0, 1.0), blur_sigma=(1.0, 1.0)))
  roughness = lambda v: float(jnp.abs(jnp.diff(v, axis=2)).mean())
  assert roughness(blurred) < 0.6 * roughness(images)


def test_wrong_number_of_per_view_values_names_the_field():
  with pytest.raises(InputError, match='config.augment.solarize_prob'):
    augment.views(jax.random.PRNGKey(0), _images(2),
                  _config(solarize_prob=(0.0, 0.2, 0.5)))
