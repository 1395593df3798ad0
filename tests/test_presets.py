"""The accelerator presets, `gpu` and `tpu`: each joint-embedding method's
full recipe in bfloat16, at batch 256 and 1024 (ssljax/defaults.py); and
the CPU budgets, `cpu10`, `cpu30` and `cpu120`: the `cpu` preset trained
for as long as each budget allows.

The fast tests read the configs and trace a bfloat16 model abstractly
(`jax.eval_shape`, no network compiled): parameters stay float32 and every
loss sees float32 inputs. The slow test runs one train step of each preset,
shrunk to a tiny model in bfloat16 with the preset's optimizer, eagerly, so
that the 14 runs share the compiled primitives instead of compiling 14 steps.
"""
import dataclasses
import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax import data
from ssljax import defaults
from ssljax import hosts
from ssljax import models
from ssljax import step as step_lib
from ssljax import validate
from ssljax.errors import InputError

JOINT_EMBEDDING = ('vicreg', 'tico', 'vicreg_tico', 'barlow_twins', 'simclr',
                   'byol', 'simsiam')
ACCELERATOR_PRESETS = tuple(defaults.ACCELERATORS)
BATCH = {'gpu': 256, 'tpu': 1024}
TPU_DEVICES = 8  # A v2-8 or v3-8; a v4-8 shows 4.


def config_of(name, preset):
  return importlib.import_module(f'configs.{name}').get_config(preset)


def float_dtypes(tree) -> set[str]:
  return {jnp.dtype(leaf.dtype).name for leaf in jax.tree.leaves(tree)
          if jnp.issubdtype(leaf.dtype, jnp.floating)}


def test_presets_are_the_full_recipe_in_bfloat16_at_their_batch():
  assert set(ACCELERATOR_PRESETS) == {'gpu', 'tpu'}
  assert set(ACCELERATOR_PRESETS) <= set(defaults.PRESETS)
  for name in JOINT_EMBEDDING:
    full = config_of(name, 'full')
    for preset in ACCELERATOR_PRESETS:
      config = config_of(name, preset)
      where = f'{name}:{preset}'
      validate.check(config)
      assert config.model.dtype == 'bfloat16', where
      assert config.model.backbone == 'resnet18', where
      assert config.model.width == 1.0, where
      assert config.augment.image_size == 32, where
      assert config.train.batch_size == BATCH[preset], where
      assert config.train.batch_size % TPU_DEVICES == 0, where
      # The full recipe's heads, augmentation, schedule and base rate: the
      # optimizer scales the rate by batch / 256 (the slow test checks the
      # rate a step uses), so the config must not.
      assert config.model.to_dict() == {**full.model.to_dict(),
                                        'dtype': 'bfloat16'}, where
      assert config.augment.to_dict() == full.augment.to_dict(), where
      assert config.optimizer.to_dict() == full.optimizer.to_dict(), where
      assert config.train.num_epochs == full.train.num_epochs == 1000, where
      for key in ('log_every_steps', 'checkpoint_every_steps'):  # Epochs.
        assert config.train[key] >= full.train[key] * 256 / BATCH[preset]


def test_only_byols_target_moves_faster_on_tpu_by_the_ema_scaling_rule():
  for name in JOINT_EMBEDDING:
    full, gpu, tpu = (config_of(name, p) for p in ('full', 'gpu', 'tpu'))
    assert gpu.method.to_dict() == full.method.to_dict(), name
    if name != 'byol':
      assert tpu.method.to_dict() == full.method.to_dict(), name
  base_tau = config_of('byol', 'full').method.base_tau
  np.testing.assert_allclose(config_of('byol', 'tpu').method.base_tau,
                             base_tau ** 4)


def test_the_studys_setup_is_its_encoder_and_projector_on_the_gpu_recipe():
  from configs import study  # pylint: disable=g-import-not-at-top
  for loss in ('vicreg', 'tico', 'vicreg_tico'):
    config, gpu = study.get_config(loss), config_of(loss, 'gpu')
    validate.check(config)
    assert config.model.backbone == 'resnet50'
    assert config.model.projector_widths == (8192, 8192, 8192)
    assert {**config.model.to_dict(), 'backbone': 'resnet18',
            'projector_widths': gpu.model.projector_widths
            } == gpu.model.to_dict(), loss
    for section in ('method', 'optimizer', 'augment', 'train'):
      assert config[section].to_dict() == gpu[section].to_dict(), loss
  with pytest.raises(InputError, match='the study compared'):
    study.get_config('simclr')


def test_pretext_tasks_take_the_presets_too():
  for name in ('rotation', 'relative_patch', 'jigsaw', 'counting'):
    full = config_of(name, 'full')
    for preset in ACCELERATOR_PRESETS:
      config = config_of(name, preset)
      validate.check(config)
      assert config.model.dtype == 'bfloat16'
      assert config.model.projector_widths == full.model.projector_widths
      assert config.method.to_dict() == full.method.to_dict()
      assert config.train.batch_size == {'gpu': full.train.batch_size,
                                         'tpu': 1024}[preset]


def test_cpu_budgets_train_the_cpu_preset_for_their_time_probed_on_the_way():
  for name in JOINT_EMBEDDING + ('rotation', 'relative_patch', 'jigsaw',
                                 'counting'):
    cpu = config_of(name, 'cpu')
    epochs = [config_of(name, p).train.num_epochs
              for p in ('cpu10', 'cpu30', 'cpu120')]
    assert epochs == sorted(set(epochs)) and epochs[1] > cpu.train.num_epochs
    for preset in defaults.CPU_BUDGETS:
      config = config_of(name, preset)
      validate.check(config)
      assert defaults.scale(preset) == 'cpu'
      assert config.model.to_dict() == cpu.model.to_dict()
      assert config.augment.to_dict() == cpu.augment.to_dict()
      assert config.method.to_dict() == cpu.method.to_dict()
      assert config.optimizer.to_dict() == cpu.optimizer.to_dict()
      assert config.train.batch_size == cpu.train.batch_size
      assert ('multiscale_probe' in config.evals) == (
          preset in defaults.MULTISCALE_BUDGETS)
      assert (config.evals.knn.every_epochs
              == config.evals.linear_probe.every_epochs
              == config.train.num_epochs / 4)


@pytest.mark.parametrize('rate', [122, 239, 442, 503])
def test_a_budgets_epochs_at_the_measured_rate_fit_its_training_minutes(rate):
  for preset, minutes in (('cpu10', 10), ('cpu30', 30), ('cpu120', 120)):
    config = defaults.get_config(preset)
    defaults.use_cpu_budget(config, preset, images_per_second=rate)
    epochs = config.train.num_epochs
    assert epochs % 0.5 == 0
    training = (minutes - defaults.CPU_BUDGET_OVERHEAD_MINUTES[preset]) * 60
    seconds = epochs * 50_000 / rate  # At the rate the bench measured.
    # Within the training minutes, but not wasting them: 0.9 of them is
    # planned, give or take a quarter epoch.
    assert 0.8 * training < seconds < training, (preset, rate)
    assert config.evals.linear_probe.every_epochs == epochs / 4
  config = defaults.get_config('cpu')
  defaults.use_cpu_budget(config, 'cpu', images_per_second=rate)
  assert config.train.num_epochs == 4.0  # Other presets: left alone.


def loss_inputs(train_step, state, x, h):
  """The dtypes of what the method's loss receives from the heads on
  encoder features `h` (and from the targets on inputs `x`), of the terms it
  returns and of its next state, traced abstractly."""
  seen = {}

  def recording_loss(outputs, method_state):
    seen['inputs'] = {k: jnp.dtype(v.dtype).name for k, v in outputs.items()}
    loss, terms, method_state = train_step.method.loss(outputs, method_state)
    seen['terms'] = {k: jnp.dtype(v.dtype).name
                     for k, v in {**terms, 'loss': loss}.items()}
    seen['state'] = method_state
    return loss, terms, method_state

  recording = dataclasses.replace(
      train_step, method=dataclasses.replace(train_step.method, loss=recording_loss))
  extras = jax.eval_shape(train_step.targets, state, x)
  jax.eval_shape(recording.head_loss, state.params, state.batch_stats,
                 state.method_state, h, extras)
  return seen


def test_a_bfloat16_model_keeps_float32_params_and_float32_loss_inputs():
  """Heads compute in bfloat16; the losses (covariances, norms, logits,
  TiCo's running C, BYOL's targets) see float32 whatever the heads return."""
  info = data.SplitInfo(50000, np.full(3, 0.5, np.float32),
                        np.full(3, 0.25, np.float32))
  mesh = hosts.data_mesh(jax.devices()[:1])
  x = jax.ShapeDtypeStruct((32, 32, 32, 3), jnp.float32)  # 2 views of 16.
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  first = None  # The first method's whole state: the encoder is every one's.
  for name in JOINT_EMBEDDING:
    config = config_of(name, 'gpu')
    config.train.batch_size = 16  # Only shapes are traced; any size does.
    train_step = step_lib.build(config, mesh, info)
    if first is None:
      first = jax.eval_shape(train_step.initial_state)
      for part in ('params', 'batch_stats', 'opt_state'):
        assert float_dtypes(getattr(first, part)) == {'float32'}, part
      h, _ = jax.eval_shape(train_step.encoder_forward, first.params,
                            first.batch_stats, x)
      assert h.dtype == jnp.bfloat16  # The model computes in bfloat16.
    # This method's heads on that encoder (initialising the heads alone
    # traces a tenth of the whole state).
    heads = jax.eval_shape(functools.partial(
        train_step.model.init, train=False, method=models.SSLModel.heads), key, h)
    params, batch_stats = (
        {'encoder': getattr(first, part)['encoder'], **heads[part]}
        for part in ('params', 'batch_stats'))
    assert float_dtypes(params) == float_dtypes(batch_stats) == {'float32'}
    state = first.replace(
        params=params, batch_stats=batch_stats,
        method_state=jax.eval_shape(train_step.method.init_state, params))
    assert float_dtypes(state.method_state) <= {'float32'}, name
    seen = loss_inputs(train_step, state, x, h)
    assert set(seen['inputs'].values()) == {'float32'}, (name, seen)
    assert set(seen['terms'].values()) == {'float32'}, (name, seen)
    assert (jax.tree.map(lambda a: a.dtype, seen['state'])
            == jax.tree.map(lambda a: a.dtype, state.method_state)), name


# Every method's tpu preset, and the gpu preset of one method: shrunk to a
# batch of 16, a method's two presets differ only in their intervals (and
# BYOL's tau; the fast tests check both), so the other six would run the same
# step again.
@pytest.mark.slow
@pytest.mark.parametrize('name, preset', [
    *((name, 'tpu') for name in JOINT_EMBEDDING), ('vicreg', 'gpu')])
def test_each_preset_runs_a_step_at_a_tiny_size(name, preset,
                                                tiny_config_of):
  config = tiny_config_of(name, preset)
  optimizer = config_of(name, preset).optimizer.to_dict()
  config.optimizer.warmup_epochs = optimizer['warmup_epochs'] = 0.0
  assert config.optimizer.to_dict() == optimizer  # The preset's, from step 0.
  for widths in ('projector_widths', 'predictor_widths'):  # 1/64 wide.
    config.model[widths] = tuple(max(4, w // 64) for w in config.model[widths])
  assert config.model.dtype == 'bfloat16'
  images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3),
                                             np.uint8)
  train_step = step_lib.build(config, hosts.data_mesh(), data.describe(images))
  # Eagerly: the presets' steps share their primitives' compilations, where
  # each jitted step would compile for ~20 s.
  with jax.disable_jit():
    state = train_step.initial_state()
    new_state, metrics = train_step(state, jnp.asarray(images),
                                         jnp.arange(64))
  assert np.isfinite(metrics['loss']), metrics
  assert all(np.all(np.isfinite(v)) for v in metrics.values()), metrics
  np.testing.assert_allclose(
      metrics['learning_rate'],
      optimizer['learning_rate'] * config.train.batch_size / 256, rtol=1e-6)
  for part in ('params', 'batch_stats', 'opt_state', 'method_state'):
    assert float_dtypes(getattr(new_state, part)) <= {'float32'}, part
  assert float_dtypes(new_state.params) == {'float32'}
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(state.params), jax.tree.leaves(new_state.params)))
