"""The commands end a user error in one line, before any data is loaded;
`--verbose` shows the traceback.

Each message is checked in this process, through the parsing the commands
share (`compare.runs.resolve_config` parses flags as `ssljax.main` does and
words the error with `cli.one_line`); the commands themselves run in a
process of their own only to show the exit status, the one line and what
is not written."""
import os
import subprocess
import sys

import pytest

from ssljax.compare import runs
from ssljax.errors import InputError
from ssljax.workdir import lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# `python -m MODULE ARGS`, then the heavy modules it had loaded, on stderr.
_RUN_MODULE = """
import atexit, runpy, sys
atexit.register(lambda: print('loaded:', *sorted(
    m for m in ('tensorflow', 'ssljax.train') if m in sys.modules),
    file=sys.stderr))
sys.argv[0] = sys.argv.pop(1)
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
"""


def _command(*args):
  """(exit status, its `ssljax:` lines, stderr, the heavy modules loaded)."""
  proc = subprocess.run([sys.executable, '-c', _RUN_MODULE, *args], cwd=ROOT,
                        capture_output=True, text=True, check=False,
                        env=dict(os.environ, TFDS_DATA_DIR='/nonexistent'))
  ours = [line for line in proc.stderr.splitlines()
          if line.startswith('ssljax:')]
  loaded = proc.stderr.rsplit('loaded:', 1)[-1].split()
  return proc.returncode, ours, proc.stderr, loaded


@pytest.mark.parametrize('flags,message', [
    (('--config=configs/vicreg.py:smoke', '--config.train.nmu_epochs=3'),
     "no such config key 'nmu_epochs' Did you mean \"num_epochs\""),
    (('--config=configs/vicreg.py:smoke', '--config.train.num_epochs=many'),
     "could not convert string to float: 'many'"),
    (('--config=configs/nope.py',),
     "No such file or directory: 'configs/nope.py'"),
    (('--config=configs/vicreg.py:smoke', '--config.train.log_every_steps=0'),
     'Out of range: config.train.log_every_steps=0 (must be >= 1). Nothing '
     'was started; set them with --config.KEY=VALUE.'),
    (('--config=configs/vicreg.py:tiny',),
     "Unknown config preset 'tiny'; allowed values: ['full', 'cpu', 'cpu10', "
     "'cpu30', 'cpu120', 'smoke', 'gpu', 'tpu']"),
])
def test_bad_config_flags_are_named_in_one_line(flags, message, monkeypatch):
  monkeypatch.chdir(ROOT)
  with pytest.raises(InputError) as raised:
    runs.resolve_config(list(flags))
  assert message in str(raised.value) and '\n' not in str(raised.value)


def test_a_bad_flag_ends_the_command_in_one_line_and_starts_nothing(
    tmp_path):
  code, ours, stderr, loaded = _command('ssljax.main',
                                        '--config=configs/vicreg.py:smoke',
                                        '--config.train.nmu_epochs=3',
                                        f'--workdir={tmp_path}')
  assert code == 75 and len(ours) == 1 and 'nmu_epochs' in ours[0], stderr
  assert 'Traceback' not in stderr
  assert not os.listdir(tmp_path)  # Nothing started,
  assert not loaded  # nor the training stack loaded.


def test_a_bad_value_and_a_busy_workdir_are_refused_before_anything_loads(
    tmp_path):
  """Before the model and TensorFlow load: in seconds. (The bad value's
  one line is checked above, in this process; here `--verbose` shows its
  traceback instead.)"""
  code, _, stderr, loaded = _command(
      'ssljax.main', '--config=configs/vicreg.py:smoke',
      '--config.train.log_every_steps=0', f'--workdir={tmp_path}/new',
      '--verbose')
  assert code == 1 and 'Traceback' in stderr, stderr
  assert 'config.train.log_every_steps=0 (must be >= 1)' in stderr
  assert not loaded and not os.path.exists(tmp_path / 'new')
  with lock.exclusive(str(tmp_path)):
    code, ours, stderr, loaded = _command(
        'ssljax.main', '--config=configs/vicreg.py:smoke',
        f'--workdir={tmp_path}')
  assert code == 75 and len(ours) == 1, stderr
  assert f"The workdir '{tmp_path}' is in use by another run" in ours[0]
  assert not loaded and not os.path.exists(tmp_path / 'log.txt')


def test_show_config_prints_the_resolved_config_and_starts_nothing():
  proc = subprocess.run(
      [sys.executable, '-m', 'ssljax.main', '--config=configs/tico.py:cpu',
       '--config.method.rho=4', '--show_config'], cwd=ROOT,
      capture_output=True, text=True, check=True)
  assert ("method.rho = 4.0  # weight of the covariance term z C z^T "
          'against the invariance term [>= 0]') in proc.stdout.splitlines()
  assert "preset = 'cpu'  # the preset the config file was read with" in (
      proc.stdout)


def test_evaluate_of_a_folder_that_is_no_workdir_ends_in_one_line(tmp_path):
  code, ours, stderr, _ = _command('ssljax.evaluate',
                                   f'--workdir={tmp_path}')
  assert code == 75 and len(ours) == 1, stderr
  assert 'is not the workdir of an ssljax training run' in ours[0]


def test_the_caches_are_on_by_default_and_off_with_an_empty_cache_dir(
    tmp_path, monkeypatch):
  from absl import flags  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from ssljax import cli  # pylint: disable=g-import-not-at-top
  assert flags.FLAGS['cache_dir'].default.endswith('/ssljax')
  monkeypatch.delenv('JAX_COMPILATION_CACHE_DIR', raising=False)
  monkeypatch.setenv('SSLJAX_CACHE_DIR', 'left over')
  before = jax.config.jax_compilation_cache_dir
  try:
    cli.use_caches(str(tmp_path))
    assert os.environ['SSLJAX_CACHE_DIR'] == str(tmp_path)
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / 'jax')
  finally:
    jax.config.update('jax_compilation_cache_dir', before)
  cli.use_caches('')
  assert 'SSLJAX_CACHE_DIR' not in os.environ
