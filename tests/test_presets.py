"""The presets of every method's config (`methods.names()`, nobody lists
them), as properties: the accelerator presets, `gpu` and `tpu`, are the
method's full recipe in bfloat16 at their batch; the CPU budgets, `cpu10`,
`cpu30` and `cpu120`, are the `cpu` preset trained for as long as each
budget allows at the rate the config claims.

The fast tests read the configs and trace a bfloat16 model abstractly
(`jax.eval_shape`, no network compiled): parameters stay float32 and every
loss sees float32 inputs. The slow test runs one train step of a bfloat16
preset, shrunk to a tiny model, with the preset's optimizer.
"""
import dataclasses
import functools
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax import budget
from ssljax import data
from ssljax import defaults
from ssljax import hosts
from ssljax import methods
from ssljax import models
from ssljax import step as step_lib
from ssljax import validate
from ssljax.errors import InputError

TPU_DEVICES = 8  # A v2-8 or v3-8; a v4-8 shows 4.


def config_of(name, preset):
  return importlib.import_module(f'configs.{name}').get_config(preset)


def float_dtypes(tree) -> set[str]:
  return {jnp.dtype(leaf.dtype).name for leaf in jax.tree.leaves(tree)
          if jnp.issubdtype(leaf.dtype, jnp.floating)}


def differing(a, b) -> set[str]:
  """The keys of two config sections whose values differ."""
  a, b = a.to_dict(), b.to_dict()
  return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


@pytest.mark.parametrize('name', methods.names())
def test_accelerator_presets_are_the_full_recipe_in_bfloat16(name):
  full = config_of(name, 'full')
  for preset in defaults.ACCELERATORS:
    config, where = config_of(name, preset), f'{name}:{preset}'
    validate.check(config)
    assert config.model.dtype == 'bfloat16', where
    assert differing(config.model, full.model) == {'dtype'}, where
    assert not differing(config.augment, full.augment), where
    assert config.train.batch_size % TPU_DEVICES == 0, where
    assert config.train.num_epochs == full.train.num_epochs, where
    for key in ('log_every_steps', 'checkpoint_every_steps'):  # In epochs.
      assert config.train[key] * config.train.batch_size >= (
          full.train[key] * full.train.batch_size), (where, key)
    # The rate per 256 images is the recipe's: the optimizer scales it by
    # the batch (the slow test checks the rate a step uses). A longer warmup
    # may come with a larger batch (Goyal et al.'s gradual warmup).
    assert differing(config.optimizer, full.optimizer) <= {'warmup_epochs'}
    assert config.optimizer.warmup_epochs >= full.optimizer.warmup_epochs
    # The method's settings are the recipe's, but for a target network's
    # momentum, scaled by the EMA scaling rule (Busbridge et al. 2023):
    # tau -> tau^k when the batch grows k-fold.
    changed = differing(config.method, full.method)
    assert changed <= {'base_tau'}, where
    if changed:
      k = config.train.batch_size / full.train.batch_size
      np.testing.assert_allclose(config.method.base_tau,
                                 full.method.base_tau ** k, err_msg=where)


def test_the_studys_setup_is_its_encoder_and_projector_on_the_gpu_recipe():
  from configs import study  # pylint: disable=g-import-not-at-top
  for loss in study.STUDY_LOSSES:
    config, gpu = study.get_config(loss), config_of(loss, 'gpu')
    validate.check(config)
    assert config.model.backbone == 'resnet50'
    assert config.model.projector_widths == study.BARLOW_TWINS_PROJECTOR
    assert differing(config.model, gpu.model) == {'backbone',
                                                  'projector_widths'}
    for section in ('method', 'optimizer', 'augment', 'train'):
      assert not differing(config[section], gpu[section]), loss
  with pytest.raises(InputError, match='the study compared'):
    study.get_config('simclr')


@pytest.mark.parametrize('name', methods.names())
def test_cpu_budgets_train_the_cpu_preset_for_a_length_they_measure(name):
  """Every method's budget presets are `cpu` with minutes instead of
  epochs: a config that set its own epochs for them would silently train
  that instead of what the budget allows."""
  cpu = config_of(name, 'cpu')
  for preset, minutes in defaults.CPU_BUDGETS.items():
    config = config_of(name, preset)
    validate.check(config)
    assert defaults.scale(preset) == 'cpu'
    assert math.isnan(config.train.num_epochs), preset
    assert config.train.budget_minutes == minutes
    for section in ('model', 'augment', 'method', 'optimizer'):
      assert not differing(config[section], cpu[section]), (preset, section)
    assert config.train.batch_size == cpu.train.batch_size
    assert ('multiscale_probe' in config.evals) == (
        preset in defaults.MULTISCALE_BUDGETS)
    quartered = {'knn', 'linear_probe'} if (
        preset in defaults.MULTISCALE_BUDGETS) else set()
    assert set(budget.quartered(config)) == quartered, preset
  assert cpu.train.budget_minutes == 0 and cpu.train.num_epochs > 0


def loss_inputs(train_step, state, x, h, extras):
  """The dtypes of what the method's loss receives from the heads on
  encoder features `h` (and from the targets on inputs `x`, and the views'
  `extras`), of the terms it returns and of its next state, traced
  abstractly."""
  seen = {}

  def recording_loss(outputs, method_state):
    seen['inputs'] = {k: jnp.dtype(v.dtype).name for k, v in outputs.items()}
    loss, terms, method_state = train_step.method.loss(outputs, method_state)
    seen['terms'] = {k: jnp.dtype(v.dtype).name
                     for k, v in {**terms, 'loss': loss}.items()}
    seen['state'] = method_state
    return loss, terms, method_state

  recording = dataclasses.replace(train_step, method=dataclasses.replace(
      train_step.method, loss=recording_loss))
  extras = {**extras, **jax.eval_shape(train_step.targets, state, x)}
  jax.eval_shape(recording.head_loss, state.params, state.batch_stats,
                 state.method_state, h, extras)
  return seen


def test_a_bfloat16_model_keeps_float32_params_and_float32_loss_inputs():
  """Heads compute in bfloat16; the losses (covariances, norms, logits,
  TiCo's running C, BYOL's targets) see float32 whatever the heads return."""
  info = data.SplitInfo(50000, np.full(3, 0.5, np.float32),
                        np.full(3, 0.25, np.float32))
  mesh = hosts.data_mesh(jax.devices()[:1])
  images = jax.ShapeDtypeStruct((16, 32, 32, 3), jnp.float32)
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  first = None  # The first method's whole state: the encoder is every one's.
  encoded = {}  # Its features, by input shape: the same for most methods.
  for name in methods.names():
    config = config_of(name, 'gpu')
    config.train.batch_size = 16  # Only shapes are traced; any size does.
    train_step = step_lib.build(config, mesh, info)
    if first is None:
      first = jax.eval_shape(train_step.initial_state)
      for part in ('params', 'batch_stats', 'opt_state'):
        assert float_dtypes(getattr(first, part)) == {'float32'}, part
    x, extras = jax.eval_shape(train_step.method.views, key, images)
    if (x.shape, train_step.method.head_groups) not in encoded:
      encoded[x.shape, train_step.method.head_groups], _ = jax.eval_shape(
          train_step.encoder_forward, first.params, first.batch_stats, x)
    h = encoded[x.shape, train_step.method.head_groups]
    assert h.dtype == jnp.bfloat16, name  # The model computes in bfloat16.
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
    seen = loss_inputs(train_step, state, x, h, extras)
    floats = {d for d in seen['inputs'].values() if 'float' in d}
    assert floats == {'float32'}, (name, seen)  # Labels stay integers.
    assert set(seen['terms'].values()) == {'float32'}, (name, seen)
    assert (jax.tree.map(lambda a: a.dtype, seen['state'])
            == jax.tree.map(lambda a: a.dtype, state.method_state)), name


@pytest.mark.slow
def test_a_bfloat16_preset_runs_a_step_at_the_presets_rate(tiny_config_of):
  """vicreg:tpu shrunk to a batch of 16 and heads 1/64 wide, with the
  preset's optimizer from step 0; the fast tests show that every method's
  accelerator presets are its recipe in bfloat16, and that every loss sees
  float32."""
  name, preset = 'vicreg', 'tpu'
  config = tiny_config_of(name, preset)
  optimizer = config_of(name, preset).optimizer.to_dict()
  config.optimizer.warmup_epochs = optimizer['warmup_epochs'] = 0.0
  assert config.optimizer.to_dict() == optimizer  # The preset's, from step 0.
  config.model.projector_widths = tuple(
      max(4, w // 64) for w in config.model.projector_widths)
  assert config.model.dtype == 'bfloat16'
  images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3),
                                             np.uint8)
  train_step = step_lib.build(config, hosts.data_mesh(), data.describe(images))
  state = train_step.initial_state()
  params = jax.device_get(state.params)  # The step donates its state.
  new_state, metrics = train_step.jitted(
      state, train_step.device_split(images), jnp.arange(64))
  assert all(np.all(np.isfinite(v)) for v in metrics.values()), metrics
  np.testing.assert_allclose(
      metrics['learning_rate'],
      optimizer['learning_rate'] * config.train.batch_size / 256, rtol=1e-6)
  for part in ('params', 'batch_stats', 'opt_state', 'method_state'):
    assert float_dtypes(getattr(new_state, part)) <= {'float32'}, part
  assert float_dtypes(new_state.params) == {'float32'}
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(params), jax.tree.leaves(new_state.params)))
