"""One live run per workdir.

Two runs writing one workdir overwrite each other's checkpoints, config and
results, and mix their curves in TensorBoard. So a run takes an exclusive
`fcntl.flock` on DIR/run.lock before it writes anything, and writes its pid,
host and start time there; a second run is refused, naming the holder. The
kernel releases the lock when its holder dies however it dies, so a killed
run never blocks the next one; the holder's line it leaves behind is
reported as taken over. (flock is per host: it does not guard a workdir on
a network file system shared by several machines.) Within one process the
lock is re-entrant: a command takes it before loading the training stack,
and `train.train_and_evaluate` then finds it held.
"""
import contextlib
import fcntl
import os
import socket
import tempfile
import time

from ssljax.errors import InputError

_HELD = set()  # The workdirs this process holds, by real path.


@contextlib.contextmanager
def exclusive(workdir: str):
  """Creates `workdir` if needed and holds its lock for the `with` block;
  a workdir that cannot be written, or that another live run holds, is
  refused with one line."""
  if os.path.realpath(workdir) in _HELD:
    yield
    return
  path = os.path.join(workdir, 'run.lock')
  try:
    os.makedirs(workdir, exist_ok=True)
    handle = open(path, 'a+')  # pylint: disable=consider-using-with
    with tempfile.NamedTemporaryFile(dir=workdir):
      pass  # New files can be made there (not a read-only folder).
  except OSError as e:
    raise InputError(f'The workdir {workdir!r} cannot be used: {e.strerror} '
                     f'({e.filename}). Pass --workdir=<a writable '
                     'directory>.') from None
  with handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      raise InputError(
          f'The workdir {workdir!r} is in use by another run '
          f'({handle.read().strip() or "holder unknown"}); nothing was '
          'changed. Wait for it to end or stop it, or pass another '
          '--workdir.') from None
    handle.seek(0)
    previous = handle.read().strip()
    if previous:
      print(f'Note: taking over the lock of {workdir}, left by a run that '
            f'ended without releasing it ({previous}).', flush=True)
    handle.seek(0)
    handle.truncate()
    handle.write(f'pid {os.getpid()} on {socket.gethostname()} since '
                 f'{time.strftime("%Y-%m-%d %H:%M:%S %Z")}\n')
    handle.flush()
    _HELD.add(os.path.realpath(workdir))
    try:
      yield
    finally:
      _HELD.discard(os.path.realpath(workdir))
      handle.seek(0)
      handle.truncate()  # Released cleanly: nothing to take over.
      handle.flush()
      fcntl.flock(handle, fcntl.LOCK_UN)
