"""The commands end a user error in one line, before any data is loaded;
`--verbose` shows the traceback."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(*args):
  proc = subprocess.run([sys.executable, '-m', *args], cwd=ROOT,
                        capture_output=True, text=True, check=False,
                        env=dict(os.environ, TFDS_DATA_DIR='/nonexistent'))
  ours = [line for line in proc.stderr.splitlines()
          if line.startswith('ssljax:')]
  return proc.returncode, ours, proc.stderr


@pytest.mark.parametrize('flag,message', [
    ('--config.train.nmu_epochs=3',
     "ssljax: no such config key 'nmu_epochs' Did you mean \"num_epochs\""),
    ('--config.train.num_epochs=many', "could not convert string to float: "
     "'many'"),
])
def test_bad_config_flags_end_in_one_line(flag, message, tmp_path):
  code, ours, stderr = _command('ssljax.main',
                                '--config=configs/vicreg.py:smoke', flag,
                                f'--workdir={tmp_path}')
  assert code == 1 and len(ours) == 1 and message in ours[0], stderr
  assert 'Traceback' not in stderr
  assert not os.listdir(tmp_path)  # Nothing started.


@pytest.mark.parametrize('config,message', [
    ('configs/nope.py', "No such file or directory: 'configs/nope.py'"),
    ('configs/vicreg.py:tiny', "Unknown config preset 'tiny'; allowed "
     "values: ['full', 'cpu', 'cpu10', 'cpu30', 'cpu120', 'smoke', 'gpu', "
     "'tpu']"),
])
def test_missing_config_files_and_presets_end_in_one_line(config, message,
                                                          tmp_path):
  code, ours, stderr = _command('ssljax.main', f'--config={config}',
                                f'--workdir={tmp_path}')
  assert code == 1 and len(ours) == 1 and message in ours[0], stderr
  assert 'Traceback' not in stderr


def test_verbose_shows_the_traceback(tmp_path):
  code, _, stderr = _command('ssljax.main', '--config=configs/vicreg.py:tiny',
                             f'--workdir={tmp_path}', '--verbose')
  assert code == 1 and 'Traceback' in stderr


def test_evaluate_of_a_folder_that_is_no_workdir_ends_in_one_line(tmp_path):
  code, ours, stderr = _command('ssljax.evaluate', f'--workdir={tmp_path}')
  assert code == 1 and len(ours) == 1, stderr
  assert 'is not the workdir of an ssljax training run' in ours[0]
