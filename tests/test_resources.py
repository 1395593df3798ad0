"""A full disk and an exhausted memory end a command in one `ssljax:` line
(what ran out, how much, what to do) with exit status 75, leave no
part-written file, and the run's history records how the start ended."""
import errno
import json
import os
import subprocess
import sys
import time

import pytest

from ssljax import errors
from ssljax.workdir import jsonfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, 'tests')


def test_a_json_file_on_a_full_disk_is_named_and_leaves_nothing(tmp_path):
  """history.json, results.json and eval/<step>.json are written so:
  the old file stays whole, the temporary one goes."""
  path = tmp_path / 'history.json'
  path.write_text('[]')
  os.symlink('/dev/full', tmp_path / 'history.json.tmp')  # ENOSPC on write.
  with pytest.raises(OSError) as raised:
    jsonfile.write(str(path), list(range(10_000)))
  assert raised.value.errno == errno.ENOSPC
  assert not os.path.lexists(tmp_path / 'history.json.tmp')
  assert path.read_text() == '[]'
  assert errors.exhausted(raised.value).startswith(
      f'the disk is full: writing {path} failed with "No space left on '
      'device" (')


# What orbax (TensorStore) and XLA raise, as they word it.
ORBAX_ENOSPC = (
    'RESOURCE_EXHAUSTED: Error writing "params.encoder.BatchNorm_0.bias/0" in '
    'OCDBT database at local file "{w}/checkpoints/2.orbax-checkpoint-tmp/'
    'default.orbax-checkpoint-tmp/ocdbt.process_0/": Failed writing: "{w}/'
    'checkpoints/2.orbax-checkpoint-tmp/default.orbax-checkpoint-tmp/ocdbt.'
    'process_0/d/592b": Failed to write 929099 bytes to file 7: No space left '
    "on device [os_error_code='28']")
XLA_OOM = 'RESOURCE_EXHAUSTED: Out of memory allocating 169694606404 bytes.'


def test_a_save_and_an_allocation_that_ran_out_are_told_apart(tmp_path):
  (tmp_path / 'checkpoints').mkdir()
  try:
    try:
      raise ValueError(ORBAX_ENOSPC.format(w=tmp_path))
    except ValueError as e:  # What failed after the save: not the cause.
      raise OSError(errno.ENOSPC, 'No space left on device') from e
  except OSError as e:
    told = errors.exhausted(e)
  assert told.startswith(
      f'the disk is full: saving the checkpoint of step 2 in {tmp_path}/'
      'checkpoints failed with "No space left on device" (')
  assert ' free there; 907.3 KiB to write at once). Free some space' in told
  assert errors.exhausted(RuntimeError(XLA_OOM)).startswith(
      'out of memory (158.0 GiB asked for): RESOURCE_EXHAUSTED: Out of '
      'memory allocating 169694606404 bytes. Lower train.batch_size')
  assert errors.exhausted(ValueError('DETSUAHXE_ECRUOSER')) is None


# The shared trained run's config (conftest.trained_run_config: its programs
# are in the tests' compilation cache): a checkpoint at step 2 of 0.4 MiB.
CONFIG = os.path.join(TESTS, 'trained_run_config.py')


def _main(tmp_path, data_name, *flags, disk_kib=None):
  """(exit status, stderr's `ssljax:` lines, stderr, seconds) of ssljax.main
  on `data_name` with WORKDIR=tmp_path/disk/run, tmp_path/disk a tmpfs of
  `disk_kib` (in a mount namespace of its own, `unshare -rm`); the workdir
  is copied to tmp_path/run before the tmpfs goes."""
  (tmp_path / 'disk').mkdir()
  command = [sys.executable, '-m', 'ssljax.main', f'--config={CONFIG}',
             f'--config.data.name={data_name}',
             f'--workdir={tmp_path / "disk" / "run"}', *flags]
  if disk_kib is not None:
    command = ['unshare', '-rm', 'sh', '-c',
               f'mount -t tmpfs -o size={disk_kib}k tmpfs "$0" && "$@"; '
               's=$?; cp -a "$0/run" "$0/../run"; exit $s',
               str(tmp_path / 'disk'), *command]
  start = time.time()
  proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                        check=False, env={**os.environ, 'PYTHONPATH': (
                            f'{ROOT}{os.pathsep}{TESTS}')})
  ours = [l for l in proc.stderr.splitlines() if l.startswith('ssljax:')]
  return proc.returncode, ours, proc.stderr, time.time() - start


def _unshare_works() -> bool:
  return subprocess.run(['unshare', '-rm', 'true'], capture_output=True,
                        check=False).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_works(), reason='needs unshare -rm')
def test_a_checkpoint_the_disk_has_no_room_for_ends_the_run_in_one_line(
    tmp_path, mock_arrays):
  status, ours, stderr, seconds = _main(tmp_path, mock_arrays, disk_kib=250)
  print(f'{seconds:.1f} s: {ours}')  # The closing note's numbers.
  assert status == 75 and len(ours) == 1, stderr[-3000:]
  assert ours[0].startswith(
      f'ssljax: the disk is full: saving the checkpoint of step 2 in '
      f'{tmp_path}/disk/run/checkpoints needs up to ')
  assert 'KiB free there). Free some space' in ours[0]
  assert 'Traceback' not in stderr
  run = tmp_path / 'run'
  assert not os.listdir(run / 'checkpoints')  # Nothing part-written.
  with open(run / 'history.json') as f:
    [start] = json.load(f)
  assert start['to_step'] == 2 and 'the disk is full' in start['outcome']


@pytest.mark.slow
def test_a_model_too_large_for_the_memory_ends_the_run_in_one_line(
    tmp_path, mock_arrays):
  """A ResNet-18 48 times as wide: 158 GiB of parameters."""
  status, ours, stderr, seconds = _main(tmp_path, mock_arrays,
                                        '--config.model.width=48.0')
  print(f'{seconds:.1f} s: {ours}')
  assert status == 75 and len(ours) == 1, stderr[-3000:]
  assert ours[0].startswith('ssljax: out of memory (')
  assert 'GiB asked for)' in ours[0] and 'Lower train.batch_size' in ours[0]
  assert 'Traceback' not in stderr
