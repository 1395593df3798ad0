"""Errors the user can act on, in one line, and how a command ends.

Config values, missing data and damaged checkpoints raise `InputError` with a
message that names the problem and the fix; `ssljax.cli` prints that message
alone instead of a traceback, as it does for a disk or a memory that ran out
(`exhausted`).

The exit status says whether running the command again can go on (what
the comparison runner retries): `RUN_FAILED` (1, also Python's for a
traceback) when the run itself failed, it diverged or the code raised, and
would fail the same way again; `STOPPED` (75, EX_TEMPFAIL of sysexits.h)
when its input or its environment stopped it (a bad flag or value, missing
data, a busy workdir, a signal, a full disk, too little memory): once what
the message names is fixed, the command resumes from the newest checkpoint.
"""
import errno
import os
import re
import shutil

RUN_FAILED = 1
STOPPED = 75

RESUMES = ('every checkpoint already written is complete, and the same '
           'command resumes from the newest')


class InputError(ValueError):
  """Bad input from the user; the message says what to do."""


class RunFailed(InputError):
  """The run itself failed (it diverged): the same command fails again."""


def _mb(num_bytes: float) -> str:
  return f'{num_bytes / 2**20:,.1f} MiB'


def _free_space(path: str | None) -> str:
  """' (N MiB free there)' for the file system of `path`, or ''."""
  while path and not os.path.isdir(path):
    path = os.path.dirname(path)
  try:
    return f' ({_mb(shutil.disk_usage(path or ".").free)} free there)'
  except OSError:
    return ''


def exhausted(error: BaseException) -> str | None:
  """One line for a disk or a memory that ran out somewhere in `error`'s
  chain of causes (what ran out, how much was asked for where the message
  says, what to do), or None. Out of memory is XLA's RESOURCE_EXHAUSTED (at
  compile or run time, on any device) or Python's MemoryError; a full disk
  is ENOSPC or EDQUOT, raised by Python or named in the text of an error
  that wraps it (orbax's and TensorStore's saves)."""
  while error is not None:
    text = str(error)
    if (isinstance(error, OSError) and error.errno in (
        errno.ENOSPC, errno.EDQUOT)) or 'No space left on device' in text:
      path = getattr(error, 'filename', None) or next(iter(re.findall(
          r"(/[^\s'\"]+)", text)), None)
      return (f'the disk is full: writing {path or "a file"} failed with '
              f'"No space left on device"{_free_space(path)}. Free some '
              'space, or move the workdir to a larger disk; ' + RESUMES + '.')
    if isinstance(error, MemoryError) or 'RESOURCE_EXHAUSTED' in text:
      asked = re.search(r'allocate (\d+) bytes', text)
      needed = f' ({_mb(int(asked.group(1)))} asked for)' if asked else ''
      return (f'out of memory{needed}: {_first_line(text)}. Lower '
              'train.batch_size (or eval_batch_size in an evaluation) or '
              'the model width, or stop what else uses the memory; '
              + RESUMES + '.')
    error = error.__cause__ or error.__context__
  return None


def _first_line(text: str) -> str:
  return (text.strip().splitlines() or ['(no message)'])[0][:300]
