"""The benchmark command measures every variant it reports (no timing
assertions: speed is read from `python -m ssljax.bench`, not from tests)."""
import time

import jax
import jax.numpy as jnp
import pytest

from ssljax import bench


@pytest.mark.slow
def test_bench_reports_every_stage(tiny_config_of):
  config = tiny_config_of('byol')  # Predictor and target network: all paths.
  results = bench.run(config, steps=1, repeats=2, probe_examples=64,
                      matmul_size=256)
  for name in ('train_step', 'augment', 'encoder_fwd_bwd', 'heads_loss_update',
               'diagnostics'):
    median, low, high = results[name]
    assert 0 < low <= median <= high, name
  assert results['encoder_fwd_bwd_flops_per_image'] > (
      2 * results['encoder_flops_per_image']) > 0
  assert results['matmul_flops_per_second'] > 1e8
  assert results['heads_loss_update_flops'] > 0
  assert results['feature_dim'] == 32 and results['compile_seconds'] > 0
  assert results['knn_seconds'] > 0
  table = bench.report(results)
  assert 'x encoder' in table and 'of the matmul ceiling' in table
  assert 'collapse diagnostics of 256 held-out images' in table


def test_flops_of_counts_a_matrix_product_as_two_flops_per_multiply_add():
  product = jax.jit(lambda a, b: a @ b)
  assert bench.flops_of(product, jnp.ones((8, 16)), jnp.ones((16, 4))) == (
      2 * 8 * 16 * 4)


def test_variants_take_turns_chain_and_drop_the_warm_up_round():
  calls = []

  def variant(name, warm_up_seconds):
    def fn(n):
      calls.append(name)
      if n == 0:
        time.sleep(warm_up_seconds)  # Only the very first call is slow.
      return (n + 1,)
    return fn

  results = bench.time_interleaved(
      {'a': (variant('a', 0.3), (0,)), 'b': (variant('b', 0.0), (0,))},
      steps=2, repeats=3)
  assert calls == ['a', 'a', 'b', 'b'] * 4  # Turns; warm-up round + 3.
  assert results['a'][2] < 0.1  # The slow first call was not timed.
  assert set(results) == {'a', 'b'}
