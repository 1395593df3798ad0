"""One live run per workdir: a second is refused naming the holder, a lock a
dead run left is taken over with a note, and an unusable workdir is refused
in one line."""
import os
import subprocess
import sys
import textwrap

import pytest

from ssljax.errors import InputError
from ssljax.workdir import lock


def test_a_second_run_is_refused_naming_the_holder(tmp_path):
  with lock.exclusive(str(tmp_path)):
    # Another process, as a second `python -m ssljax.main` would be.
    probe = textwrap.dedent(f'''
        from ssljax.workdir import lock
        from ssljax.errors import InputError
        try:
          with lock.exclusive({str(tmp_path)!r}):
            print('acquired')
        except InputError as e:
          print(e)''')
    out = subprocess.run([sys.executable, '-c', probe], capture_output=True,
                         text=True, check=True).stdout
    assert 'is in use by another run' in out, out
    assert f'pid {os.getpid()} on ' in out and 'since 20' in out
    # Within this process the lock is re-entrant (a command takes it before
    # train_and_evaluate does), and the outer block still holds it after.
    with lock.exclusive(str(tmp_path / '.')):
      pass
    assert 'is in use' in subprocess.run(
        [sys.executable, '-c', probe], capture_output=True, text=True,
        check=True).stdout
  with lock.exclusive(str(tmp_path)):  # Released: free again.
    pass
  assert (tmp_path / 'run.lock').read_text() == ''


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_note(tmp_path,
                                                             capsys):
  # SIGKILL releases the flock but leaves the holder's line.
  (tmp_path / 'run.lock').write_text('pid 4242 on somehost since 2026-11-24\n')
  with lock.exclusive(str(tmp_path)):
    assert f'pid {os.getpid()}' in (tmp_path / 'run.lock').read_text()
  note = capsys.readouterr().out
  assert 'taking over the lock' in note and 'pid 4242 on somehost' in note


def test_a_workdir_that_is_a_file_is_refused_in_one_line(tmp_path):
  (tmp_path / 'file').write_text('not a directory')
  with pytest.raises(InputError, match=r"'.*file' cannot be used: .* Pass "
                     r'--workdir=<a writable directory>') as raised:
    with lock.exclusive(str(tmp_path / 'file')):
      pass
  assert '\n' not in str(raised.value)


def test_a_read_only_workdir_is_refused_in_one_line(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'run.lock').write_text('')  # Left by an earlier run.
  if os.geteuid() == 0:  # Root ignores permissions, not the immutable flag.
    if subprocess.run(['chattr', '+i', str(workdir)],
                      check=False).returncode:
      pytest.skip('cannot make a read-only folder here')
  else:
    workdir.chmod(0o555)
  try:
    with pytest.raises(InputError, match=r"'.*run' cannot be used: .* Pass "
                       r'--workdir=<a writable directory>') as raised:
      with lock.exclusive(str(workdir)):
        pass
    assert '\n' not in str(raised.value)
  finally:
    if os.geteuid() == 0:
      subprocess.run(['chattr', '-i', str(workdir)], check=True)
    workdir.chmod(0o755)
