"""The multi-scale readout: region means against a direct NumPy loop, the
stages it reads are the encoder's own, and the probe on them runs end to end
through the pipeline's sharded feature extraction."""
import numpy as np
import pytest

from ssljax import data
from ssljax import evaluators
from ssljax import features
from ssljax import hosts
from ssljax import step as step_lib
from ssljax.errors import InputError
from ssljax.evaluators import multiscale_probe


@pytest.mark.parametrize('size,grid', [(4, 2), (5, 2), (7, 3), (3, 1)])
def test_region_means_are_the_means_of_each_grid_cell(size, grid):
  x = np.random.default_rng(size).standard_normal((2, size, size + 1, 3))
  got = np.asarray(multiscale_probe.region_means(x, grid))
  # Position p of n belongs to cell p * grid // n; average each cell's
  # positions one by one.
  want = np.zeros((2, grid, grid, 3))
  count = np.zeros((grid, grid))
  for p in range(size):
    for q in range(size + 1):
      i, j = p * grid // size, q * grid // (size + 1)
      want[:, i, j] += x[:, p, q]
      count[i, j] += 1
  assert count.min() > 0
  want = (want / count[None, :, :, None]).reshape(2, -1)
  assert got.shape == (2, grid * grid * 3)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_grid_finer_than_the_map_is_refused_naming_the_setting():
  with pytest.raises(InputError, match='cannot be split into a 3x3 grid'):
    multiscale_probe.region_means(np.zeros((1, 2, 2, 1)), 3)


def test_an_unknown_stage_is_refused_naming_the_encoders_stages():
  with pytest.raises(InputError, match=r'no stage \[5\]; its stages are '
                     r'\[1, 2\]'):
    multiscale_probe.RegionPooling((2, 5), 2)(
        {'stage1': np.zeros((1, 4, 4, 1)), 'stage2': np.zeros((1, 2, 2, 1))})


@pytest.mark.slow  # Builds, compiles and probes a pipeline: ~13 s.
def test_the_readout_reads_the_encoders_stages_and_the_probe_runs(
    tiny_config):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (32, 32, 32, 3), np.uint8)
  labels = (np.arange(32) % 4).astype(np.int32)
  mesh, info = hosts.data_mesh(), data.describe(images, labels)
  state = step_lib.build(tiny_config, mesh, info).initial_state()
  encoder = features.encoder(tiny_config, mesh, info)
  # The last stage over a 1x1 grid is the encoder's own output.
  np.testing.assert_allclose(
      encoder.extract(state, images[:16],
                      multiscale_probe.RegionPooling((4,), 1)),
      encoder.extract(state, images[:16]), rtol=1e-5, atol=1e-6)

  # Stages 2 and 4 of a 4-channel ResNet-18 (8 and 32 channels), quadrants.
  tiny_config.evals.multiscale_probe = multiscale_probe.default_config()
  tiny_config.evals.multiscale_probe.update(
      num_steps=20, l2_grid=(1e-3,), stages=(2, 4), grid=2)
  evaluator = evaluators.make_all(tiny_config, ['multiscale_probe'])
  result = evaluators.evaluate(encoder, state, {'train': (images, labels),
                                             'test': (images, labels)},
                               evaluator)
  probe = result['multiscale_probe']
  assert probe['feature_dim'] == 4 * 8 + 4 * 32
  assert 0.25 < probe['test_accuracy'] <= 1  # Fitted on these very images.
  assert evaluators.summary(result, evaluator) == {
      'feature_dim': 32, 'multiscale_probe_accuracy': probe['test_accuracy'],
      'multiscale_feature_dim': 160}
