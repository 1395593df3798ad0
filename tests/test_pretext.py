"""Pretext tasks: their input transformations, labels and losses."""
import hashlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax import augment
from ssljax import data
from ssljax.errors import InputError
from ssljax.methods import counting, jigsaw, relative_patch, rotation


def _images(n=8, seed=0):
  return data.to_unit_range(jnp.asarray(np.random.RandomState(seed).randint(
      0, 256, (n, 32, 32, 3), np.uint8)))


def _position_images(n=4):
  """Channel 0 holds each pixel's row and channel 1 its column (in 1/255)."""
  rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing='ij')
  image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)
  return data.to_unit_range(jnp.asarray(np.broadcast_to(image,
                                                        (n, 32, 32, 3))))


# Rotation.

def test_rotation_labels_match_the_applied_rotation(tiny_config_of):
  config = tiny_config_of('rotation')
  images = _images()
  x, outputs = rotation.make(config).views(jax.random.PRNGKey(0), images)
  n = len(images)
  assert x.shape == (4 * n, 32, 32, 3)
  blocks = np.asarray(x).reshape(4, n, 32, 32, 3)
  labels = np.asarray(outputs['labels']).reshape(4, n)
  for k in range(4):
    np.testing.assert_array_equal(labels[k], k)
    # Rotating back by the label recovers the unrotated view exactly.
    np.testing.assert_array_equal(np.rot90(blocks[k], -k, axes=(1, 2)),
                                  blocks[0])
  # A quarter turn is counter-clockwise: the top row becomes the left column.
  np.testing.assert_array_equal(blocks[1][:, ::-1, 0], blocks[0][:, 0, :])


# Relative patch location.

def _patch_config(**overrides):
  cfg = relative_patch.default_config()
  cfg.update(overrides)
  return cfg


@pytest.mark.parametrize('patch,gap,jitter', [(8, 3, 2), (6, 2, 8), (10, 1, 0)])
def test_patches_stay_inside_the_image_for_every_jitter(patch, gap, jitter):
  cfg = _patch_config(patch_size=patch, gap=gap, jitter=jitter)
  seen = set()
  for seed in range(50):
    centre, neighbour, _ = relative_patch.sample_pairs(
        jax.random.PRNGKey(seed), 64, cfg, 32)
    corners = np.concatenate([centre, neighbour])
    assert corners.min() >= 0 and corners.max() + patch <= 32
    seen.update(np.unique(corners[:, 0] % (patch + gap)).tolist())
  # Every jitter offset of the grid happens (with a random origin on top).
  assert len(seen) == min(patch + gap, jitter + 1 + (32 - 3 * patch
                                                     - 2 * gap - jitter))


def test_relative_patch_positions_match_their_labels():
  cfg = _patch_config(jitter=0)
  centre, neighbour, labels = relative_patch.sample_pairs(
      jax.random.PRNGKey(1), 256, cfg, 32)
  assert set(np.asarray(labels).tolist()) == set(range(8))
  grid = [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)]
  expected = np.array([grid[k] for k in np.asarray(labels)]) - 1
  np.testing.assert_array_equal(np.asarray(neighbour - centre),
                                expected * (cfg.patch_size + cfg.gap))
  # With jitter each patch moves by at most `jitter` from its cell.
  cfg = _patch_config(jitter=2)
  centre, neighbour, labels = relative_patch.sample_pairs(
      jax.random.PRNGKey(2), 256, cfg, 32)
  expected = np.array([grid[k] for k in np.asarray(labels)]) - 1
  offset = np.asarray(neighbour - centre) - expected * (cfg.patch_size
                                                        + cfg.gap)
  assert np.abs(offset).max() == cfg.jitter


def test_relative_patch_views_cut_the_labelled_patches(tiny_config_of):
  config = tiny_config_of('relative_patch')
  config.method.update(colour_drop_prob=0.0, input_size=8)
  x, outputs = relative_patch.make(config).views(jax.random.PRNGKey(3),
                                                 _position_images(64))
  assert x.shape == (128, 8, 8, 3)
  x = np.asarray(x) * 255
  centre, neighbour = x[:64], x[64:]
  rows = neighbour[:, 0, 0, 0] - centre[:, 0, 0, 0]
  grid = [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)]
  expected = np.array([grid[k] for k in np.asarray(outputs['labels'])]) - 1
  cell = config.method.patch_size + config.method.gap
  np.testing.assert_array_equal(np.rint(rows / cell), expected[:, 0])
  # Columns too, mirrored in the flipped images (the flip happens first).
  cols = neighbour[:, 0, :, 1].mean(1) - centre[:, 0, :, 1].mean(1)
  assert np.all(np.abs(cols[expected[:, 1] == 0]) < 5)
  assert np.all(np.abs(cols[expected[:, 1] != 0]) >= 6)


def test_colour_dropping_keeps_one_channel_and_noises_the_others():
  image = jax.random.uniform(jax.random.PRNGKey(0), (8, 8, 3))
  for seed in range(5):
    out = np.asarray(augment.drop_colour_channels(jax.random.PRNGKey(seed),
                                                  image, 1.0))
    kept = [c for c in range(3) if np.array_equal(out[..., c], image[..., c])]
    assert len(kept) == 1
    for c in set(range(3)) - set(kept):
      assert np.std(out[..., c]) < 0.02 * np.std(image[..., kept[0]]) + 1e-7
  np.testing.assert_array_equal(
      augment.drop_colour_channels(jax.random.PRNGKey(0), image, 0.0), image)


def test_a_grid_that_does_not_fit_is_refused():
  with pytest.raises(InputError, match='patch_size'):
    augment.grid_corners(jax.random.PRNGKey(0), 2, 10, 2, 2, 32)


# Jigsaw.

def test_permutation_set_is_spread_out_and_deterministic():
  for num, distance in ((64, 7), (100, 6)):
    perms = jigsaw.permutation_set(num)
    assert perms.shape == (num, 9)
    assert len({tuple(p) for p in perms}) == num
    assert all(sorted(p) == list(range(9)) for p in perms)
    reported = jigsaw.min_pairwise_hamming(perms)
    brute = min(sum(a != b for a, b in zip(p, q))
                for p, q in itertools.combinations(perms.tolist(), 2))
    assert reported == brute == distance
  np.testing.assert_array_equal(jigsaw.permutation_set(100)[:64],
                                jigsaw.permutation_set(64))
  with pytest.raises(InputError, match='num_permutations'):
    jigsaw.permutation_set(1)


def test_the_papers_1000_permutations_are_the_set_configs_always_meant():
  """Pinned by the sha256 of the set the first implementation (Hamming
  distances summed along rows) chose: a config names the same puzzles on
  every version."""
  perms = jigsaw.permutation_set(1000)
  assert perms.dtype == np.int32 and hashlib.sha256(perms.tobytes()).hexdigest(
  ) == 'd66bbdec2800aba666587a44082f860120faead7b5494c93055f35e7ab183905'


def test_shuffling_and_unshuffling_tiles_recovers_them():
  tiles = jax.random.normal(jax.random.PRNGKey(0), (5, 9, 4, 4, 3))
  perms = jnp.asarray(jigsaw.permutation_set(64)[[3, 10, 0, 63, 7]])
  shuffled = jigsaw.shuffle_tiles(tiles, perms)
  np.testing.assert_array_equal(shuffled[1, 2], tiles[1, perms[1, 2]])
  assert not np.array_equal(shuffled, tiles)
  np.testing.assert_array_equal(
      jigsaw.shuffle_tiles(shuffled, jnp.argsort(perms, axis=1)), tiles)


def test_jigsaw_views_put_the_labelled_permutation_of_tiles(tiny_config_of):
  config = tiny_config_of('jigsaw')
  config.method.update(colour_drop_prob=0.0, input_size=8, jitter=0)
  n = 16
  x, outputs = jigsaw.make(config).views(jax.random.PRNGKey(4),
                                         _position_images(n))
  tiles = np.asarray(x).reshape(9, n, 8, 8, 3) * 255
  cell = config.method.tile_size + config.method.gap
  # Rows are untouched by the horizontal flip: each slot's row of cells.
  rows = np.floor(tiles[:, :, 0, 0, 0] / cell).T  # [n, 9]
  perms = jigsaw.permutation_set(config.method.num_permutations)[
      np.asarray(outputs['labels'])]
  np.testing.assert_array_equal(rows, perms // 3)


# Counting.

def _counting_reference(counts, margin):
  """eq. 5 of Noroozi et al. 2017, in float64, one image at a time."""
  phi = np.asarray(counts, np.float64).reshape(5, -1, counts.shape[-1])
  n = phi.shape[1]
  feat, diff = [], []
  for i in range(n):
    tiles = phi[1, i] + phi[2, i] + phi[3, i] + phi[4, i]
    feat.append(np.sum((phi[0, i] - tiles) ** 2))
    y = (i - 1) % n  # the other image
    diff.append(max(0.0, margin - np.sum((phi[0, y] - tiles) ** 2)))
  return np.mean(feat) + np.mean(diff)


def test_counting_loss_matches_numpy():
  counts = jax.nn.relu(jax.random.normal(jax.random.PRNGKey(0), (5 * 6, 7)))
  for margin in (0.5, 10.0, 100.0):
    loss, terms = counting.counting_loss(counts, margin)
    np.testing.assert_allclose(loss, _counting_reference(counts, margin),
                               rtol=1e-5)
    np.testing.assert_allclose(loss, terms['feature_match'] + terms['contrast'],
                               rtol=1e-6)
  grad = jax.grad(lambda c: counting.counting_loss(c, 10.0)[0])(counts)
  eps = 1e-3
  delta = np.zeros(counts.shape); delta[3, 2] = eps
  numeric = (_counting_reference(counts + delta, 10.0)
             - _counting_reference(counts - delta, 10.0)) / (2 * eps)
  np.testing.assert_allclose(grad[3, 2], numeric, rtol=1e-2, atol=1e-4)


def test_counting_gradient_is_finite_at_zero_distance_and_at_the_margin():
  # Two images, one count: the tiles of each sum to 2, D o x = D o y = 0, so
  # ||phi(D o y) - sum phi(T x)||^2 = 4 = the margin exactly.
  counts = jnp.zeros((5, 2, 1)).at[1].set(2.0).reshape(10, 1)
  loss, terms = counting.counting_loss(counts, 4.0)
  assert float(terms['contrast']) == 0.0
  grad = jax.grad(lambda c: counting.counting_loss(c, 4.0)[0])(counts)
  feat_grad = jax.grad(
      lambda c: counting.counting_loss(c, 4.0)[1]['feature_match'])(counts)
  assert np.all(np.isfinite(grad))
  np.testing.assert_array_equal(grad, feat_grad)  # The hinge adds nothing.
  # All counts equal: zero distance everywhere, a finite (zero) feature grad.
  same = jnp.ones((10, 3))
  grad = jax.grad(lambda c: counting.counting_loss(c, 0.0)[0])(
      same.at[:2].set(4.0))
  assert np.all(np.isfinite(grad))


def test_downsample_and_tiles():
  x = jax.random.uniform(jax.random.PRNGKey(0), (3, 32, 32, 3))
  parts = np.asarray(counting.downsample_and_tiles(x))
  assert parts.shape == (5, 3, 16, 16, 3)
  top = np.concatenate([parts[1], parts[2]], axis=2)
  bottom = np.concatenate([parts[3], parts[4]], axis=2)
  np.testing.assert_array_equal(np.concatenate([top, bottom], axis=1), x)
  pooled = np.asarray(x).reshape(3, 16, 2, 16, 2, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(parts[0], pooled, rtol=1e-6)


def test_a_head_of_the_wrong_width_is_refused(tiny_config_of):
  outputs = {'logits': jnp.zeros((4, 5)), 'labels': jnp.zeros(4, jnp.int32)}
  with pytest.raises(InputError, match='last width is 4'):
    rotation.make(tiny_config_of('rotation')).loss(outputs, ())
