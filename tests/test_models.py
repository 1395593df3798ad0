"""Encoder architectures: shapes and parameter counts of the published nets."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssljax import models
from ssljax.errors import InputError


def _config(backbone, width=1.0, projector=(64, 64, 32), stem_strides=1):
  return ml_collections.ConfigDict({'model': {
      'backbone': backbone, 'width': width, 'stem_strides': stem_strides,
      'dtype': 'float32',
      'projector_widths': projector, 'projector_last_norm': False,
      'projector_last_bias': False, 'predictor_widths': (),
      'online_probe': False}})


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


# torchvision's ResNet-18/50 have 11,689,512 / 25,557,032 parameters with an
# ImageNet stem (7x7x3x64 conv) and a 1000-way fc; the CIFAR stem replaces the
# 7x7 conv by 3x3 (-64*3*(49-9)) and we drop the fc; BN scale/offset count too.
@pytest.mark.parametrize('backbone, expected, dim', [
    ('resnet18', 11_689_512 - 64 * 3 * 40 - (512 * 1000 + 1000), 512),
    ('resnet50', 25_557_032 - 64 * 3 * 40 - (2048 * 1000 + 1000), 2048),
])
def test_parameter_count_matches_torchvision(backbone, expected, dim):
  model = models.create_model(_config(backbone))
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)), train=False))
  assert _count(shapes['params']['encoder']) == expected
  h, z, p = jax.eval_shape(lambda: model.apply(
      jax.tree.map(jnp.zeros_like, shapes), jnp.zeros((2, 32, 32, 3)),
      train=False))
  assert h.shape == (2, dim) and z.shape == (2, 32) and p is None


def test_width_multiplier_and_projector_shapes():
  model = models.create_model(_config('resnet18', width=0.25))
  x = jnp.zeros((4, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x,
                                                train=False))
  h, z, _ = jax.eval_shape(lambda v: model.apply(v, x, train=False),
                           variables)
  assert h.shape == (4, 128) and z.shape == (4, 32)
  stem = variables['params']['encoder']['Conv_0']['kernel']
  assert stem.shape == (3, 3, 3, 16)  # CIFAR stem: 3x3, stride 1.
  assert jax.eval_shape(lambda v: model.apply(
      v, x, method=models.SSLModel.features), variables).shape == (4, 128)


@pytest.mark.parametrize('stem_strides', [1, 2])
def test_stage_maps_are_sown_at_the_stems_resolution(stem_strides):
  model = models.create_model(
      _config('resnet18', 0.25, stem_strides=stem_strides))
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x,
                                                train=False))
  h, sown = jax.eval_shape(lambda v: model.apply(
      v, x, method=models.SSLModel.features, mutable=['intermediates']),
      variables)
  side = 32 // stem_strides
  assert {k: v[0].shape for k, v in sown['intermediates']['encoder'].items()
          } == {'stage1': (2, side, side, 16),
                'stage2': (2, side // 2, side // 2, 32),
                'stage3': (2, side // 4, side // 4, 64),
                'stage4': (2, side // 8, side // 8, 128)}
  assert h.shape == (2, 128)


def test_predictor_and_simsiam_projector_heads():
  config = _config('resnet18', width=0.125, projector=(48, 24))
  config.model.projector_last_norm = True
  config.model.predictor_widths = (8, 24)
  model = models.create_model(config)
  x = jax.random.normal(jax.random.PRNGKey(1), (6, 32, 32, 3))

  @jax.jit  # One program: a ResNet's ops one by one compile slower.
  def run(x):
    variables = model.init(jax.random.PRNGKey(0), x, train=False)
    (_, z, p), _ = model.apply(variables, x, train=True,
                               mutable=['batch_stats'])
    # BYOL's target path, `project`, is the projector after the encoder.
    z_only = model.apply(variables, x, train=False,
                         method=models.SSLModel.project)
    _, z_full, _ = model.apply(variables, x, train=False)
    return variables, z, p, z_only, z_full

  variables, z, p, z_only, z_full = run(x)
  assert z.shape == (6, 24) and p.shape == (6, 24)
  # SimSiam's projector ends in an affine-free BatchNorm: in training mode each
  # output dimension has zero mean and unit variance over the batch.
  np.testing.assert_allclose(np.mean(z, 0), 0, atol=1e-5)
  np.testing.assert_allclose(np.var(z, 0), 1, rtol=1e-3)
  assert 'bias' in variables['params']['predictor']['Dense_1']  # BYOL's.
  np.testing.assert_allclose(z_only, z_full, rtol=1e-6)


def test_bad_backbone_lists_choices():
  with pytest.raises(InputError, match='resnet18.*resnet34.*resnet50'):
    models.check_names(_config('vgg'))


def test_grouped_heads_see_each_images_parts_side_by_side():
  h = jnp.arange(3 * 2 * 4).reshape(6, 4)  # 3 blocks of 2 images, F = 4.
  grouped = np.asarray(models.group_features(h, 3))
  assert grouped.shape == (2, 12)
  for n in range(2):
    np.testing.assert_array_equal(
        grouped[n], np.concatenate([h[g * 2 + n] for g in range(3)]))
  np.testing.assert_array_equal(models.group_features(h, 1), h)
  config = _config('resnet18', width=0.0625, projector=(8, 5))
  model = models.create_model(config)
  x = jnp.ones((3 * 2, 16, 16, 3))
  variables = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), x, train=False, head_groups=3))
  _, z, _ = jax.eval_shape(lambda v: model.apply(v, x, train=False,
                                                 head_groups=3), variables)
  assert z.shape == (2, 5)
