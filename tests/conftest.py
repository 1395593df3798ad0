"""Shared test fixtures: a tiny config that trains in seconds on CPU, and one
finished run of it that the end-to-end tests read."""
import fcntl
import importlib
import json
import os
import subprocess
import sys

import pytest

from ssljax import hugepages

# Keep TensorFlow (pulled in by tfds) quiet and off any accelerator.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# The files that take longest in either tier (measured with --durations=0),
# handed to the xdist workers first, so that the two workers of a 2-core
# machine finish together instead of one waiting on a long file handed out
# last.
LONGEST_FIRST = ('test_multihost.py', 'test_signals.py', 'test_sharding.py',
                 'test_bench.py', 'test_train.py', 'test_method_contract.py',
                 'test_history.py', 'test_methods.py', 'test_online_probe.py',
                 'test_pretext.py', 'test_cli.py', 'test_linear_probe.py',
                 'test_models.py', 'test_augment.py', 'test_presets.py')


# XLA:CPU compiling for speed of compiling, not of running (see
# pytest_configure). Measured from empty caches on 2 cores (AMD EPYC): the
# slow tier's resume test 74.9 s at XLA's defaults, 67.3 s with LLVM at
# -O0; tests/test_pretext.py 22.4-28.1 s with -O0 alone, 17.9-19.6 s with
# XLA's older loop emitters for fusions as well; the fast tier 145-157 s
# and 105.7 s.
TEST_XLA_FLAGS = ('--xla_backend_optimization_level=0',
                  '--xla_cpu_use_fusion_emitters=false')


def xla_flags_of_users(flags: str) -> str:
  """`flags` with XLA's default fusion emitters, for the tests that compare
  a computation split over devices or processes with the whole at float32's
  tolerances: the older emitters compute an element differently as part of
  another shape (a metric of the sharded step moved by 0.2% between 8
  devices and 1), the default ones do not."""
  return ' '.join(f for f in flags.split()
                  if not f.startswith('--xla_cpu_use_fusion_emitters')
                  ) + ' --xla_cpu_use_fusion_emitters=true'


def pytest_addoption(parser):
  parser.addoption('--golden', choices=('check', 'record'), default='check',
                   help='record: write what the golden tests compute into '
                   'tests/golden.json (after bumping NUMERICS_VERSION).')


def pytest_configure(config):
  """The tests and the commands they start keep 4 KiB pages: the setting
  `GLIBC_TUNABLES=glibc.malloc.hugetlb=0`, which the xdist workers and
  every subprocess inherit, keeps the commands from re-executing themselves
  with huge pages (ssljax.hugepages; tests/test_hugepages.py checks that
  they do). Huge pages speed up the large buffers of a real step; the
  tests' tiny programs only pay for them, the kernel zeroing 2 MiB for
  each fresh mapping: the fast tier spent 25-30 s of kernel time with them
  and 13-14 s without (docs/speed.md).

  They also share JAX's persistent compilation cache, kept in pytest's cache
  directory: most slow tests train the same tiny model, in this process, in
  xdist workers and in subprocesses, which all inherit the setting, and
  each would otherwise compile the same programs again (the slow tier spent
  most of its time compiling). It changes no result: XLA compiles the same
  program to the same executable. A user's cache setting is kept, and a
  pytest without its cache (`-p no:cacheprovider`, as test_sharding's
  subprocesses) uses the setting it inherited.

  XLA compiles them with TEST_XLA_FLAGS: the tests run tiny programs a few
  times each, so compiling is most of their time (backend compilation alone
  was 112 of the fast tier's 290 CPU-seconds), and LLVM at -O0 and the
  older fusion emitters (which generate less code to optimise) save more
  compile time than they cost in run time. XLA's HLO passes, which decide
  what is computed, run as ever; the last bits may differ, which
  tests/golden.py allows for by recording checksums per XLA_FLAGS. A flag
  that the user's XLA_FLAGS sets already is kept as the user set it."""
  flags = os.environ.get('XLA_FLAGS', '')
  for flag in TEST_XLA_FLAGS:
    if flag.split('=')[0] not in flags:
      flags = f'{flags} {flag}'.strip()
  os.environ['XLA_FLAGS'] = flags
  if 'JAX_COMPILATION_CACHE_DIR' not in os.environ and hasattr(config,
                                                               'cache'):
    os.environ['JAX_COMPILATION_CACHE_DIR'] = str(
        config.cache.mkdir('jax-compilation-cache'))
    # Every program, however quickly it compiled: the xdist workers, the
    # tests' subprocesses and the slow tier after the fast one share them
    # (the fast tier from an empty cache: 124 s against 150 s, measured).
    # No size cap: with one, every write lists the whole cache, which made
    # caching every program quadratic (CI 24.1 minutes against 21.9).
    os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
    os.environ.setdefault('JAX_COMPILATION_CACHE_MAX_SIZE', '-1')
  if hugepages.TUNABLE not in os.environ.get('GLIBC_TUNABLES', ''):
    os.environ['GLIBC_TUNABLES'] = hugepages.tunables_with(0)
  # Here, not at the top: subprocesses of the tests import this module too
  # (and it imports JAX).
  import golden  # pylint: disable=g-import-not-at-top
  golden.RECORD = config.getoption('golden') == 'record'


def pytest_collection_modifyitems(items):
  """Orders the tests so that LONGEST_FIRST's files come first (xdist's
  --dist loadfile hands out whole files in collection order)."""
  rank = lambda item: next((i for i, name in enumerate(LONGEST_FIRST)
                            if item.path.name == name), len(LONGEST_FIRST))
  items.sort(key=rank)  # Stable: the order within a file is kept.


def _shrink(config):
  """A smoke config shrunk to a 4-channel ResNet-18 and a few steps."""
  config.model.width = 0.0625
  config.train.batch_size = 16
  config.train.num_epochs = 1.5
  config.train.log_every_steps = 2
  config.train.checkpoint_every_steps = 2
  config.optimizer.warmup_epochs = 0.5
  config.eval_batch_size = 16
  config.evals.linear_probe.num_steps = 30
  config.evals.linear_probe.l2_grid = (1e-4, 1e-2)
  return config


def _tiny_config():
  from configs import vicreg  # pylint: disable=g-import-not-at-top
  config = _shrink(vicreg.get_config('smoke'))
  config.model.projector_widths = (32, 32, 32)
  return config


@pytest.fixture
def tiny_config():
  """The VICReg config shrunk, with a 32-d projector."""
  return _tiny_config()


@pytest.fixture
def tiny_config_of():
  """tiny_config_of(name, preset='smoke'): configs/<name>.py:preset, shrunk
  (its own heads)."""
  return lambda name, preset='smoke': _shrink(
      importlib.import_module(f'configs.{name}').get_config(preset))


def trained_run_config():
  """tiny_config with the hybrid's loss (the method with state), 6 steps,
  checkpoints at 2, 4 and 6, the linear probe and kNN every 2 steps, the
  collapse watch at every log (tests/trained_run_config.py gives it to
  ssljax.main)."""
  from ssljax.methods import vicreg_tico  # pylint: disable=g-import-not-at-top
  config = _tiny_config()
  config.method = vicreg_tico.default_config()
  config.evals.linear_probe.every_epochs = 0.5
  config.evals.knn.every_epochs = 0.5
  return config


def write_mock_arrays(folder) -> str:
  """The `config.data.name` of a dataset like `tfds.testing.mock_data`'s
  CIFAR-10 (64 random 32x32 images in each of train and test, 10 classes),
  written to `folder` as `python -m ssljax.pack --unpack` writes one: the
  tests' subprocesses train on it without importing TensorFlow, several
  seconds of each one's start-up."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ssljax import data  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for split in ('train', 'test'):
    data.write_array_cache(os.path.join(folder, split),
                           rng.integers(0, 256, (64, 32, 32, 3), np.uint8),
                           rng.integers(0, 10, 64).astype(np.int32))
  with open(os.path.join(folder, 'dataset.json'), 'w') as f:
    json.dump({'name': 'mock', 'class_names': [f'class {c}'
                                               for c in range(10)]}, f)
  return f'{data.ARRAYS_PREFIX}{folder}'


def _shared_folder(tmp_path_factory, worker_id):
  """The temporary folder that every xdist worker of this session shares."""
  root = tmp_path_factory.getbasetemp()
  return root if worker_id == 'master' else root.parent


@pytest.fixture(scope='session')
def mock_arrays(tmp_path_factory, worker_id) -> str:
  """write_mock_arrays's data name, written once for all xdist workers."""
  root = _shared_folder(tmp_path_factory, worker_id)
  with open(root / 'mock_arrays.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / 'mock_arrays' / 'dataset.json').exists():
      write_mock_arrays(str(root / 'mock_arrays'))
  return f'arrays:{root / "mock_arrays"}'


@pytest.fixture(scope='session')
def trained_run(tmp_path_factory, worker_id, mock_arrays):
  """(config, workdir) of one finished run of trained_run_config on
  mock_arrays, trained by `python -m ssljax.main` (its console output kept
  in DIR/stdout.txt and DIR/stderr.txt) once for every end-to-end test that
  reads a run (copy the workdir to change it), by whichever xdist worker
  asks first while the other waits (each would otherwise train it: 30-50 s
  each)."""
  root = _shared_folder(tmp_path_factory, worker_id)
  workdir = root / 'trained_run'
  tests = os.path.dirname(os.path.abspath(__file__))
  config = trained_run_config()
  config.data.name = mock_arrays
  with open(root / 'trained_run.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (workdir / 'results.json').exists():
      proc = subprocess.run(
          [sys.executable, '-m', 'ssljax.main',
           f'--config={tests}/trained_run_config.py',
           f'--config.data.name={mock_arrays}', f'--workdir={workdir}'],
          cwd=os.path.dirname(tests), capture_output=True, text=True,
          env={**os.environ, 'PYTHONPATH': os.pathsep.join(
              [os.path.dirname(tests), tests,
               os.environ.get('PYTHONPATH', '')])}, check=False)
      assert proc.returncode == 0, proc.stderr[-3000:]
      (workdir / 'stdout.txt').write_text(proc.stdout)
      (workdir / 'stderr.txt').write_text(proc.stderr)
  return config, workdir
