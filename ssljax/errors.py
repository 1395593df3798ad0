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


def size(num_bytes: float) -> str:
  """'4.4 KiB', '12.3 MiB', '4.5 GiB'."""
  unit = next((u for u in (3, 2) if num_bytes >= 2**(10 * u)), 1)
  return f'{num_bytes / 2**(10 * unit):,.1f} {" KMG"[unit]}iB'


def disk_full(what: str, path: str | None, *details: str) -> str:
  """The one line of a full disk: `what` ran out of it, the space free on
  the file system of `path` and `details` in parentheses, what to do."""
  while path and not os.path.isdir(path):
    path = os.path.dirname(path)
  try:
    if path:
      details = (f'{size(shutil.disk_usage(path).free)} free there',
                 *details)
  except OSError:
    pass
  said = f' ({"; ".join(details)})' if details else ''
  return (f'the disk is full: {what}{said}. Free some space, or move the '
          f'workdir to a larger disk; {RESUMES}.')


def exhausted(error: BaseException) -> str | None:
  """One line for a disk or a memory that ran out somewhere in `error`'s
  chain of causes (what ran out, how much was asked for where the message
  says, what to do), or None. Out of memory is XLA's RESOURCE_EXHAUSTED (at
  compile or run time, on any device) or Python's MemoryError; a full disk
  is ENOSPC or EDQUOT, raised by Python or named in the text of an error
  that wraps it (orbax's and TensorStore's saves). The first to run out is
  named (the deepest in the chain: a save that filled the disk, not the
  write that failed after it)."""
  chain = []
  while error is not None:  # As Python shows it: `raise ... from None` ends it.
    chain.append(error)
    error = error.__cause__ or (None if error.__suppress_context__
                                else error.__context__)
  for error in reversed(chain):
    text = str(error)
    if (isinstance(error, OSError) and error.errno in (
        errno.ENOSPC, errno.EDQUOT)) or 'No space left on device' in text:
      path = getattr(error, 'filename', None) or next(iter(re.findall(
          r"(?:^|[\s'\"])(/[^\s'\"]+)", text)), None)
      saving = re.search(r'^(.*)/(\d+)\.orbax-checkpoint-tmp', path or '')
      what = (f'saving the checkpoint of step {saving[2]} in {saving[1]}'
              if saving else f'writing {path or "a file"}')
      written = re.search(r'write (\d+) bytes', text)
      return disk_full(f'{what} failed with "No space left on device"', path,
                       *([f'{size(int(written[1]))} to write at once']
                         if written else []))
    if isinstance(error, MemoryError) or 'RESOURCE_EXHAUSTED' in text:
      asked = re.search(r'allocat\w* (\d+) bytes', text)
      needed = f' ({size(int(asked.group(1)))} asked for)' if asked else ''
      return (f'out of memory{needed}: {_first_line(text)}. Lower '
              'train.batch_size (or eval_batch_size in an evaluation) or '
              'the model width, or stop what else uses the memory; '
              + RESUMES + '.')
  return None


def _first_line(text: str) -> str:
  return (text.strip().splitlines() or ['(no message)'])[0][:300].rstrip('.')
