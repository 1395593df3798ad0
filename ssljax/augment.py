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
  """float32 [N, H, W, 3] in [0, 1] -> `num_views` float32 [N, S, S, 3]
  views in [0, 1]."""
  out = []
  for view, view_key in enumerate(jax.random.split(key, num_views)):
    augment = functools.partial(_view, cfg=cfg,
                                p=_per_view(cfg, num_views, view))
    image_keys = jax.random.split(view_key, images.shape[0])
    out.append(jax.vmap(augment)(image_keys, images))
  return tuple(out)


# Geometric ops of the pretext tasks (rotation, patches, tiles, counting).


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
  """Flips each image of [N, H, W, C] left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1], images)


def crop(image: jax.Array, top: jax.Array, left: jax.Array,
         size: int) -> jax.Array:
  """The size x size window of one [H, W, C] image at (top, left), which may
  be traced; indices are clamped into the image as by `dynamic_slice`."""
  return jax.lax.dynamic_slice(image, (top, left, 0),
                               (size, size, image.shape[-1]))


def resize(images: jax.Array, size: int) -> jax.Array:
  """Bilinear resize of [..., H, W, C] to size x size (identity if equal)."""
  if images.shape[-3:-1] == (size, size):
    return images
  return jax.image.resize(images, images.shape[:-3] + (size, size,
                                                       images.shape[-1]),
                          'linear')


def drop_colour_channels(key: jax.Array, image: jax.Array,
                         prob: float) -> jax.Array:
  """With probability `prob`, keeps one random channel of an [H, W, 3] image
  and replaces the other two by Gaussian noise of 1/100 of its std, centred
  on its mean.

  Doersch et al. (2015, sec. 3.1) use this "colour dropping" against chromatic
  aberration: lenses shift the colour channels by an amount that depends on
  the position in the image, which a network can read instead of the content.
  """
  k_apply, k_keep, k_noise = jax.random.split(key, 3)
  keep = jax.random.randint(k_keep, (), 0, 3)
  kept = image[..., keep]
  noise = (jax.random.normal(k_noise, image.shape) * 0.01 * jnp.std(kept)
           + jnp.mean(kept))
  dropped = jnp.where(jnp.arange(3) == keep, image, noise)
  return jnp.where(jax.random.uniform(k_apply) < prob, dropped, image)


def grid_corners(key: jax.Array, num_images: int, patch: int, gap: int,
                 jitter: int, image_size: int) -> jax.Array:
  """[N, 9, 2] top-left (y, x) corners of a 3x3 grid of patches per image.

  Cells are `patch + gap` apart, each patch moves by its own random offset in
  [0, jitter] per axis, and the whole grid by a random offset within the
  image's slack, so neighbouring patches are gap - jitter to gap + jitter
  pixels apart and rarely line up: continuing edges and lines, a shortcut of
  patch-based pretext tasks, are denied (Doersch et al. 2015, Noroozi &
  Favaro 2016).
  Corners are row-major: cell (r, c) is index 3r + c.
  """
  span = 3 * patch + 2 * gap + jitter
  if span > image_size or min(patch, gap, jitter) < 0 or patch == 0:
    raise InputError(
        f'config.method: 3 * patch_size ({patch}) + 2 * gap ({gap}) + jitter '
        f'({jitter}) = {span} must fit the {image_size}-pixel image with a '
        'positive patch_size and non-negative gap and jitter; lower them.')
  k_origin, k_jitter = jax.random.split(key)
  origin = jax.random.randint(k_origin, (num_images, 1, 2), 0,
                              image_size - span + 1)
  rows, cols = jnp.divmod(jnp.arange(9), 3)
  cells = jnp.stack([rows, cols], -1) * (patch + gap)
  offsets = jax.random.randint(k_jitter, (num_images, 9, 2), 0, jitter + 1)
  return origin + cells + offsets


def crop_patches(images: jax.Array, corners: jax.Array,
                 size: int) -> jax.Array:
  """[N, H, W, C] images and [N, K, 2] corners -> [N, K, size, size, C]."""
  per_image = jax.vmap(lambda image, c: crop(image, c[0], c[1], size),
                       in_axes=(None, 0))
  return jax.vmap(per_image)(images, corners)


def patch_blocks(key: jax.Array, patches: jax.Array, colour_drop_prob: float,
                 size: int) -> jax.Array:
  """[N, K, P, P, 3] patches -> [K * N, size, size, 3] network inputs: block k
  holds patch k of every image (the layout grouped heads expect), each patch
  colour-dropped with `colour_drop_prob` and resized to size x size."""
  blocks = jnp.swapaxes(patches, 0, 1).reshape(-1, *patches.shape[2:])
  keys = jax.random.split(key, blocks.shape[0])
  blocks = jax.vmap(drop_colour_channels, in_axes=(0, 0, None))(
      keys, blocks, colour_drop_prob)
  return resize(blocks, size)
