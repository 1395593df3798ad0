"""What the commands (`ssljax.main`, `ssljax.evaluate`, `ssljax.compare`)
share: a user error ends in one line, and the caches that make a second
start fast.

Bad flags (an unknown config key, a value of the wrong type, a missing
config file, an unknown preset), the `InputError`s a command raises, a
full disk, too little memory and a stop by SIGINT or SIGTERM print
`ssljax: <what is wrong and how to fix it>` and exit with the status that
`ssljax.errors` defines. Tracebacks are for bugs; `--verbose` shows them for
the others too.
"""
import ctypes
import os
import re
import signal
import sys

from absl import app
from absl import flags
from absl import logging

from ssljax import errors
from ssljax.errors import InputError

flags.DEFINE_string(
    'cache_dir', os.environ.get('SSLJAX_CACHE_DIR', os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
        'ssljax')),
    'Where the decoded datasets (checked against their checksums) and the '
    "compiled programs (JAX's persistent compilation cache) are kept, so "
    'that a second run or a resume starts in seconds; empty: no caches.')
flags.DEFINE_bool('verbose', False, 'Show the full log (absl INFO lines) on '
                  'the console, and the traceback of a user error.')


class _QuietOrbax(logging.logging.Filter):
  """Orbax logs every step of every save and restore at INFO, and a failed
  save with its traceback at ERROR, which ssljax reports in its own line:
  on the console, its warnings only with --verbose (DIR/log.txt keeps
  them all)."""

  def filter(self, record):
    return '/orbax/' not in record.pathname or (
        flags.FLAGS.verbose and record.levelno >= logging.logging.WARNING)


def one_line(error: BaseException) -> str:
  """The message of `error` on one line: an InputError's own where one is in
  the chain of causes, else the outermost message (a config key error's
  'Did you mean' included)."""
  chain = []
  while error is not None:
    chain.append(error)
    error = error.__cause__ or error.__context__
  message = next((e for e in chain if isinstance(e, InputError)), chain[0])
  while message.args and isinstance(message.args[0], BaseException):
    message = message.args[0]  # ml_collections wraps its KeyError.
  text = message.args[0] if message.args and isinstance(
      message.args[0], str) else str(message)
  if 'Traceback (most recent call last)' in text:
    # config_flags reports an error of the config file with the text of its
    # traceback: keep the last line, the error itself.
    last = text.strip().splitlines()[-1]
    text = re.sub(r'^[\w.]+(Error|Exception): ', '', last)
  if isinstance(message, (KeyError, AttributeError)):
    text = f'no such config key {text}'
  return re.sub(r'\s+', ' ', text).strip()


def _end(message: str, status: int):
  print(f'ssljax: {message}', file=sys.stderr, flush=True)
  sys.exit(status)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, then the config file loaded and overridden (which
  `config_flags` defers to the first use)."""
  try:
    rest = flags.FLAGS(argv)
    if 'config' in flags.FLAGS:
      flags.FLAGS.config.keys()  # Raises the deferred error of a bad file.
    return rest
  except Exception as e:  # pylint: disable=broad-except
    if '--verbose' in argv:
      raise
    _end(f'{one_line(e)} (--helpfull lists the flags)', errors.STOPPED)


def use_caches(cache_dir: str):
  """Decoded datasets go to CACHE_DIR/arrays (`data.array_cache`) and
  compiled programs to CACHE_DIR/jax, unless JAX_COMPILATION_CACHE_DIR
  names another place."""
  if not cache_dir:
    os.environ.pop('SSLJAX_CACHE_DIR', None)
    return
  os.environ['SSLJAX_CACHE_DIR'] = cache_dir
  if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update('jax_compilation_cache_dir',
                      os.path.join(cache_dir, 'jax'))


# Set by the comparison runner in the environment of a training process it
# starts: the runner's process id (`stop_with_parent`).
PARENT_ENV = 'SSLJAX_STOP_WITH_PARENT'


def stop_with_parent():
  """SIGTERM to this command once the process that started it (the
  comparison runner, named by PARENT_ENV) is gone, however it went (SIGKILL
  included), so that no training goes on orphaned, holding its workdir's
  lock. Linux's prctl(PR_SET_PDEATHSIG), set here rather than between fork
  and exec, which is unsafe in a process with threads; elsewhere nothing."""
  parent = os.environ.pop(PARENT_ENV, None)
  if not parent:
    return
  try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG.
  except (OSError, AttributeError):
    return
  if os.getppid() != int(parent):  # Gone before the request took effect.
    os.kill(os.getpid(), signal.SIGTERM)


def _stop_on_sigterm(signum, frame):
  """SIGTERM where the training loop does not record it
  (`train.stop_requests`) stops the command as Ctrl-C does, its history and
  lock seen to, where Python would end at once."""
  del signum, frame
  raise KeyboardInterrupt('SIGTERM')


def run(main):
  """Runs `main(argv)` as a command: flags parsed, orbax quiet, user errors
  and exhausted resources in one line."""
  def checked(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    logging.get_absl_handler().addFilter(_QuietOrbax())
    use_caches(flags.FLAGS.cache_dir)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    stop_with_parent()
    try:
      main()
    except InputError as e:
      if flags.FLAGS.verbose:
        raise
      _end(str(e), errors.RUN_FAILED if isinstance(e, errors.RunFailed)
           else errors.STOPPED)
    except KeyboardInterrupt as e:  # Outside the loop's own handling.
      if flags.FLAGS.verbose:
        raise
      what = f'{e} stopped the command' if str(e) else 'interrupted'
      _end(f'{what}; {errors.RESUMES}.', errors.STOPPED)
    except Exception as e:  # pylint: disable=broad-except
      message = errors.exhausted(e)
      if message is None or flags.FLAGS.verbose:
        raise
      _end(message, errors.STOPPED)
  app.run(checked, flags_parser=_parse_flags)
