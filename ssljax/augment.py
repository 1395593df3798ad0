"""Two-view augmentation on device: pure per-image functions, vmapped.

Every image of every view gets its own key, and probabilities are applied with
selects, not branches, so one jitted call augments the whole (sharded) batch.
The pipeline of a view is the SimCLR/BYOL/VICReg one (Chen et al. 2020,
Grill et al. 2020, Bardes et al. 2022):
  random resized crop -> horizontal flip -> colour jitter (random order, prob p)
  -> grayscale -> Gaussian blur -> solarization.
Colour ops come from dm-pix; the random resized crop is ours.

Probabilities are given per view, e.g. solarize_prob=(0.1, 0.1), so that
asymmetric recipes such as BYOL's blur (1.0, 0.1) and solarize (0.0, 0.2) are
just config values.
"""
import functools
import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.errors import InputError

PER_VIEW_FIELDS = ('flip_prob', 'jitter_prob', 'grayscale_prob', 'blur_prob',
                   'solarize_prob')


def default_config() -> ml_collections.ConfigDict:
  """The CIFAR-10 VICReg recipe (solo-learn): crop scale 0.2-1, jitter
  0.4/0.4/0.2/0.1 with p 0.8, grayscale 0.2, solarization 0.1, no blur."""
  return ml_collections.ConfigDict(dict(
      image_size=32, crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3),
      flip_prob=(0.5, 0.5), jitter_prob=(0.8, 0.8), brightness=0.4,
      contrast=0.4, saturation=0.2, hue=0.1, grayscale_prob=(0.2, 0.2),
      blur_prob=(0.0, 0.0), blur_sigma=(0.1, 2.0), blur_kernel_size=3,
      solarize_prob=(0.1, 0.1)))


def random_resized_crop(key, image, size: int, scale, ratio):
  """Crops a box of area fraction U(scale) and aspect ratio log-U(ratio),
  clipped to the image, and resamples it bilinearly to size x size."""
  height, width = image.shape[:2]
  k_area, k_ratio, k_x, k_y = jax.random.split(key, 4)
  area = height * width * jax.random.uniform(k_area, (), minval=scale[0],
                                             maxval=scale[1])
  aspect = jnp.exp(jax.random.uniform(
      k_ratio, (), minval=math.log(ratio[0]), maxval=math.log(ratio[1])))
  crop_w = jnp.clip(jnp.sqrt(area * aspect), 1.0, width)
  crop_h = jnp.clip(jnp.sqrt(area / aspect), 1.0, height)
  x0 = jax.random.uniform(k_x, ()) * (width - crop_w)
  y0 = jax.random.uniform(k_y, ()) * (height - crop_h)
  # Output coordinate o samples input coordinate o / s + offset.
  s = jnp.array([size / crop_h, size / crop_w])
  return jax.image.scale_and_translate(
      image, (size, size, 3), (0, 1), s, -jnp.array([y0, x0]) * s,
      method='linear')


def color_jitter(key, image, brightness, contrast, saturation, hue):
  """torchvision's ColorJitter: the four adjustments in a random order, each
  with a factor drawn uniformly (brightness/contrast/saturation in
  [1-x, 1+x], hue shift in [-x, x] of a turn), clipped to [0, 1]."""
  k_order, k_b, k_c, k_s, k_h = jax.random.split(key, 5)
  factor = lambda k, x: jax.random.uniform(k, (), minval=max(0., 1 - x),
                                           maxval=1 + x)
  ops = [
      lambda x: x * factor(k_b, brightness),
      lambda x: pix.adjust_contrast(x, factor(k_c, contrast)),
      lambda x: pix.adjust_saturation(x, factor(k_s, saturation)),
      lambda x: pix.adjust_hue(x, jax.random.uniform(k_h, (), minval=-hue,
                                                     maxval=hue)),
  ]
  for op_index in jax.random.permutation(k_order, len(ops)):
    image = jnp.clip(jax.lax.switch(op_index, ops, image), 0.0, 1.0)
  return image


def _view(key, image, cfg, p):
  """One augmented view of one float image in [0, 1]; `p` holds this view's
  probabilities. Ops with probability 0 are left out of the graph."""
  keys = iter(jax.random.split(key, 10))
  coin = lambda prob: jax.random.uniform(next(keys), ()) < prob
  x = random_resized_crop(next(keys), image, cfg.image_size, cfg.crop_scale,
                          cfg.crop_ratio)
  if p['flip_prob'] > 0:
    x = jnp.where(coin(p['flip_prob']), x[:, ::-1], x)
  if p['jitter_prob'] > 0:
    jittered = color_jitter(next(keys), x, cfg.brightness, cfg.contrast,
                            cfg.saturation, cfg.hue)
    x = jnp.where(coin(p['jitter_prob']), jittered, x)
  if p['grayscale_prob'] > 0:
    gray = pix.rgb_to_grayscale(x, keep_dims=True)
    x = jnp.where(coin(p['grayscale_prob']), gray, x)
  if p['blur_prob'] > 0:
    sigma = jax.random.uniform(next(keys), (), minval=cfg.blur_sigma[0],
                               maxval=cfg.blur_sigma[1])
    blurred = pix.gaussian_blur(x, sigma, cfg.blur_kernel_size)
    x = jnp.where(coin(p['blur_prob']), blurred, x)
  if p['solarize_prob'] > 0:
    x = jnp.where(coin(p['solarize_prob']), pix.solarize(x, 0.5), x)
  return jnp.clip(x, 0.0, 1.0)


def _per_view(cfg, num_views: int, view: int) -> dict:
  """This view's value of every probability."""
  values = {}
  for field in PER_VIEW_FIELDS:
    if len(cfg[field]) != num_views:
      raise InputError(
          f'config.augment.{field}={tuple(cfg[field])} has {len(cfg[field])} '
          f'values for {num_views} views; give one probability per view.')
    values[field] = float(cfg[field][view])
  return values


def views(key: jax.Array, images: jax.Array, cfg: ml_collections.ConfigDict,
          num_views: int = 2) -> tuple[jax.Array, ...]:
  """uint8 [N, H, W, 3] -> `num_views` float32 [N, S, S, 3] views in [0, 1]."""
  images = images.astype(jnp.float32) / 255.0
  out = []
  for view, view_key in enumerate(jax.random.split(key, num_views)):
    augment = functools.partial(_view, cfg=cfg,
                                p=_per_view(cfg, num_views, view))
    image_keys = jax.random.split(view_key, images.shape[0])
    out.append(jax.vmap(augment)(image_keys, images))
  return tuple(out)
