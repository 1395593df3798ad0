"""What a command shows on the console, and where the rest goes.

The console gets what a user acts on: a header, one progress line, the
warnings (collapse, non-finite values, changed settings) and the final
evaluation table. Everything, those lines included, goes to DIR/log.txt with
absl's INFO lines (orbax, the event writer, JAX's start-up notices), which
`--verbose` brings back to the console. TensorBoard has the curves.

On a terminal the progress line is tqdm's, updated in place at every step;
elsewhere (a pipe, a file, a notebook's captured output) a line is printed
at every log instead, so that a log read later has no carriage returns.
"""
import io
import logging
import logging.handlers
import os
import sys

from absl import logging as absl_logging
import tqdm

LOG = 'log.txt'


class _Tee(io.TextIOBase):
  """The console and the log file as one stream: whole lines are written to
  both, to the file under the lock of the handler that writes absl's lines
  there (another thread's log line never lands inside one of ours), on the
  console around the progress bar rather than over it."""

  def __init__(self, console, log, handler: logging.Handler):
    self.console, self.log, self.handler, self.pending = (console, log,
                                                          handler, '')

  def write(self, text: str) -> int:
    self.pending += text
    lines, newline, self.pending = self.pending.rpartition('\n')
    if newline:
      self._write(lines + newline)
    return len(text)

  def _write(self, text: str):
    self.handler.acquire()
    try:
      if self.handler.failed is None:
        self.log.write(text)
    except OSError:
      self.handler.handleError(None)
    finally:
      self.handler.release()
    with tqdm.tqdm.external_write_mode(file=self.console):
      self.console.write(text)
      self.console.flush()

  def flush(self):
    if self.pending:  # A line without its newline yet: as it is.
      self._write(self.pending)
      self.pending = ''
    if self.handler.failed is None:
      self.handler.flush()
    self.console.flush()

  def isatty(self) -> bool:
    return self.console.isatty()


class _LogFile(logging.StreamHandler):
  """absl's lines to DIR/log.txt. A write that fails (a full disk) ends the
  file, not the command: the console goes on, told once why the file
  stopped, and the command's own error (if any) names the cause."""

  failed = None

  def emit(self, record):
    if self.failed is None:
      super().emit(record)

  def flush(self):
    try:
      super().flush()
    except OSError:
      self.handleError(None)

  def handleError(self, record):
    del record  # Whichever line it was.
    if self.failed is None:
      self.failed = sys.exc_info()[1]
      absl_logging.warning('%s is no longer written: %s', self.stream.name,
                           self.failed)


_early = logging.handlers.MemoryHandler(capacity=100_000,
                                        flushLevel=logging.CRITICAL + 1)


def quiet(verbose: bool):
  """On the console, absl shows warnings and errors only (unless
  `verbose`); its lines are kept until `log_to` names the file. Called
  first thing, before JAX starts."""
  logging.getLogger().addHandler(_early)
  if not verbose:
    absl_logging.get_absl_handler().setLevel(logging.WARNING)
    # TensorFlow's C++ start-up notices (read when it loads): errors only.
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    # TensorFlow 2.21 prints its oneDNN notice through absl's C++ log before
    # that level is read. Here it only decodes TFDS records (no float
    # math), which oneDNN does not touch.
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')


def log_to(workdir: str):
  """From here on, this process's prints and absl's log lines (those since
  `quiet` included) are appended to DIR/log.txt. Called once the workdir is
  known to be usable and ours."""
  log = open(os.path.join(workdir, LOG), 'a', buffering=1,  # pylint: disable=consider-using-with
             encoding='utf-8')
  to_file = _LogFile(log)
  to_file.setFormatter(absl_logging.PythonFormatter())
  logging.getLogger().addHandler(to_file)
  _early.setTarget(to_file)
  _early.flush()
  logging.getLogger().removeHandler(_early)
  sys.stdout = _Tee(sys.stdout, log, to_file)


class Progress:
  """The run's progress line: on a terminal, tqdm's line updated at every
  step (its rate and ETA from the steps, the latest log's values after
  them); elsewhere, a printed line per log."""

  def __init__(self, total_steps: int, step: int):
    console = getattr(sys.stdout, 'console', sys.stdout)
    self.bar = tqdm.tqdm(
        total=total_steps, initial=step, file=console, leave=True,
        disable=not console.isatty(), dynamic_ncols=True, unit='step',
        bar_format='step {n}/{total} [{elapsed}<{remaining}, {rate_fmt}]'
        '{postfix}')

  def update(self, step: int):
    self.bar.update(step - self.bar.n)

  def show(self, step: int, values: str, eta_minutes: float):
    """The values of the log at `step`, e.g. 'epoch 0.5 loss 21.3'."""
    if self.bar.disable:
      print(f'step {step}/{self.bar.total} {values} eta {eta_minutes:.1f} '
            'min', flush=True)
    else:
      self.bar.set_postfix_str(values)

  def close(self):
    self.bar.close()
