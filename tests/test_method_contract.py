"""The contract between the train step and a method, checked for every module
of ssljax/methods/ (nobody lists them) and for the README's example method.

The step relies on: `views` giving float inputs in [0, 1] in blocks of the
batch, pure in its key; a state that keeps its structure, shapes and dtypes
through `loss` and `after_update` (the state is donated and checkpointed);
scalar, finite terms; and a loss that depends on the network's outputs. The
whole step is traced abstractly (`jax.eval_shape`); only the heads and the
loss run on numbers, so every method is checked in a few seconds.
"""
import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs
import golden
from ssljax import data
from ssljax import defaults
from ssljax import hosts
from ssljax import methods
from ssljax import step as step_lib
from ssljax import validate

README = pathlib.Path(__file__).parents[1] / 'README.md'
NUM_IMAGES = 64


def random_like(specs, seed: int = 4):
  """Arrays of the given shapes: normal floats (parameters at the scale of
  an initialisation), zero integers (the step, the keys). Drawn by NumPy:
  JAX's sampler would compile for every shape."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: (0.1 * rng.standard_normal(s.shape)).astype(s.dtype)
      if jnp.issubdtype(s.dtype, jnp.floating) else np.zeros(s.shape, s.dtype),
      specs)


def check_contract(name, config_of):
  for preset in defaults.PRESETS:  # Every preset of its config builds it,
    config = config_of(name, preset)
    assert isinstance(methods.make(config), methods.Method)
    unranged = [key for key, (_, found) in validate.ranged(config).items()
                if found is None]  # and is range-checked,
    assert not unranged, f'{name}: no RANGES entry for {unranged}'
    unexplained = [line.split(' = ')[0] for line in validate.described(
        config).splitlines() if '  # ' not in line]  # and explained.
    assert not unexplained, f'{name}: no HELP entry for {unexplained}'
  config = config_of(name)
  assert config.method.name == name
  train_step = step_lib.build(
      config, hosts.data_mesh(jax.devices()[:1]),
      data.SplitInfo(NUM_IMAGES, np.full(3, 0.5, np.float32),
                     np.full(3, 0.25, np.float32)))
  method, batch = train_step.method, config.train.batch_size
  images = data.to_unit_range(jnp.asarray(np.random.default_rng(0).integers(
      0, 256, (batch, 32, 32, 3), np.uint8)))

  # Eagerly: its small ops compile once for all methods, where a jitted
  # pipeline of augmentations takes 3 s to compile for each.
  views = method.views
  x, extras = views(jax.random.PRNGKey(0), images)
  assert x.dtype == jnp.float32 and x.ndim == 4 and x.shape[-1] == 3
  assert x.shape[0] % (method.head_groups * batch) == 0
  assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-6
  assert all(v.shape[0] % batch == 0 for v in extras.values())
  np.testing.assert_array_equal(x, views(jax.random.PRNGKey(0), images)[0])
  assert not np.array_equal(x, views(jax.random.PRNGKey(1), images)[0])

  # The whole step, abstractly: the state comes out as it went in.
  state = random_like(jax.eval_shape(train_step.initial_state))
  new_state, metrics = jax.eval_shape(
      train_step, state,
      jax.ShapeDtypeStruct((NUM_IMAGES, 32, 32, 3), jnp.uint8),
      jax.ShapeDtypeStruct((NUM_IMAGES,), jnp.int32))
  assert (jax.tree.structure(new_state) == jax.tree.structure(state)), name
  spec = lambda tree: [(a.shape, a.dtype) for a in jax.tree.leaves(tree)]
  assert spec(new_state) == spec(state)
  assert {'loss', 'learning_rate', 'grad_norm'} <= set(metrics)
  assert all(m.shape == () for m in metrics.values())

  # The heads and the loss on numbers, from random encoder features.
  x = data.standardize_channels(x, train_step.train_info)
  h_spec, _ = jax.eval_shape(train_step.encoder_forward, state.params,
                             state.batch_stats, x)
  h = random_like(h_spec, seed=2) * 10  # Of unit scale.
  targets = random_like(jax.eval_shape(train_step.targets, state, x))
  # Jitted: one program compiles faster than its ops one by one.
  (loss, (terms, method_state, _)), grad = jax.jit(jax.value_and_grad(
      train_step.head_loss, argnums=3, has_aux=True))(
          state.params, state.batch_stats, state.method_state, h,
          {**extras, **targets})
  assert loss.shape == () and np.isfinite(loss), name
  for term, value in terms.items():
    assert value.shape == () and np.isfinite(value), term
  assert spec(method_state) == spec(state.method_state)
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)
  # What it computes, pinned to the numerics version (tests/golden.py).
  golden.check(f'method/{name}', (x, extras, loss, terms, method_state, grad),
               required=False)


@pytest.mark.parametrize('name', methods.names())
def test_method_meets_the_contract(name, tiny_config_of):
  check_contract(name, tiny_config_of)


def readme_files() -> dict[str, str]:
  """{path: code} of the README's Python blocks whose first line names a
  file of the repository, e.g. `# ssljax/methods/align_uniform.py`."""
  blocks = re.findall(r'```python\n# (\S+\.py)\n(.*?)```', README.read_text(),
                      re.S)
  return dict(blocks)


def test_readme_example_method_is_found_and_meets_the_contract(
    tiny_config_of, tmp_path, monkeypatch):
  files = readme_files()
  method_files = [p for p in files if p.startswith('ssljax/methods/')]
  assert len(method_files) == 1 and len(files) == 2, sorted(files)
  name = pathlib.Path(method_files[0]).stem
  assert f'configs/{name}.py' in files
  for path, code in files.items():
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(code)
  # As if the two files were added to the repository.
  monkeypatch.setattr(methods, '__path__', [*methods.__path__,
                                            str(tmp_path / 'ssljax/methods')])
  monkeypatch.setattr(configs, '__path__', [*configs.__path__,
                                            str(tmp_path / 'configs')])
  for module in (f'ssljax.methods.{name}', f'configs.{name}'):
    monkeypatch.delitem(sys.modules, module, raising=False)
  assert name in methods.names()
  check_contract(name, tiny_config_of)
  for module in (f'ssljax.methods.{name}', f'configs.{name}'):
    sys.modules.pop(module, None)
