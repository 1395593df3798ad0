"""SIGTERM (preemption) and SIGINT stop a run between steps, after it has
checkpointed the step it reached, with one line saying where; the same
command then resumes from there. A run stopped so, then killed with SIGKILL
at a random point of its resume, ends bit-identical to a run nothing
interrupted."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import orbax.checkpoint as ocp
import pytest

from ssljax import train
from ssljax.workdir import checkpoints
from ssljax.workdir import history as history_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny VICReg run on conftest's mock arrays: 40 steps, checkpoints every
# 10.
_RUN = textwrap.dedent('''
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from conftest import _shrink
    from configs import vicreg
    from ssljax import cli, train
    from ssljax.errors import InputError
    config = _shrink(vicreg.get_config('smoke'))
    config.model.projector_widths = (32, 32, 32)
    config.train.num_epochs = 10.0
    config.train.log_every_steps = 5
    config.train.checkpoint_every_steps = 10
    config.collapse.num_images = 0
    config.evals = {{}}
    config.data.name = {data_name!r}
    try:
      train.train_and_evaluate(config, sys.argv[1])
    except InputError as e:
      sys.exit(f'ssljax: {{e}}')
''')


def test_sigterm_and_sigint_are_recorded_between_steps_not_raised():
  before = signal.getsignal(signal.SIGINT)  # Ignored in a background job.
  with train.stop_requests() as stops:
    os.kill(os.getpid(), signal.SIGINT)  # Would be KeyboardInterrupt.
    os.kill(os.getpid(), signal.SIGTERM)  # Would end the process.
    time.sleep(0.01)
  assert stops == ['SIGINT', 'SIGTERM']
  assert signal.getsignal(signal.SIGINT) is before


def _start(script, workdir):
  return subprocess.Popen([sys.executable, str(script), str(workdir)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def _wait_for(proc, condition):
  """Until `condition()` holds, while `proc` runs (5 minutes at most)."""
  deadline = time.time() + 300
  while not condition() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.1)
  assert condition(), proc.communicate()


def _wait_for_first_checkpoint(proc, workdir):
  _wait_for(proc, (workdir / 'checkpoints' / '10').exists)


def _final_checksums(workdir):
  """The final state's leaf checksums, verified against the state on disk
  by the restore."""
  manager = checkpoints.manager(str(workdir / 'checkpoints'))
  step = manager.latest_step()
  assert step == 40
  restored = manager.restore(step, args=ocp.args.Composite(
      default=ocp.args.StandardRestore()))
  record = checkpoints.read_record(manager, step)
  assert checkpoints.checksums(restored['default']) == record['checksums']
  return record['checksums']


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, mock_arrays):
  """(script, final checksums, seconds from the first checkpoint to the
  end) of the run no signal touched."""
  tmp = tmp_path_factory.mktemp('uninterrupted')
  script = tmp / 'run.py'
  script.write_text(_RUN.format(root=ROOT, tests=os.path.join(ROOT, 'tests'),
                                data_name=mock_arrays))
  proc = _start(script, tmp / 'run')
  _wait_for_first_checkpoint(proc, tmp / 'run')
  after_first = time.time()
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  return script, _final_checksums(tmp / 'run'), time.time() - after_first


@pytest.mark.slow
def test_sigterm_then_sigkill_then_resume_ends_bit_identical(uninterrupted,
                                                             tmp_path):
  """One run, stopped twice: by SIGTERM after its first checkpoint (it
  checkpoints the step it reached and says so in one line), resumed, then
  killed with SIGKILL at a random point after the checkpoint it resumed
  from, and resumed again: it ends with every leaf as the run no signal
  touched."""
  script, expected, seconds_left = uninterrupted
  workdir = tmp_path / 'run'
  proc = _start(script, workdir)
  _wait_for_first_checkpoint(proc, workdir)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 1, stderr
  line = [l for l in stderr.splitlines() if l.startswith('ssljax:')]
  assert len(line) == 1 and 'SIGTERM' in line[0], stderr
  stopped_at = int(line[0].split('after step ')[1].split(',')[0])
  assert 10 < stopped_at < 40  # After the first checkpoint, before the end.
  assert (workdir / 'checkpoints' / str(stopped_at)).is_dir()
  assert f'checkpoints/{stopped_at}; run the same command' in line[0]
  assert not (workdir / 'results.json').exists()

  # The resume, killed at a random point once it has restored its state
  # (and recorded its start): within half the time the run had left after
  # its first checkpoint.
  seed = int(time.time())
  delay = random.Random(seed).uniform(0, 0.5 * seconds_left)
  proc = _start(script, workdir)
  _wait_for(proc, lambda: len(history_lib.read(str(workdir))) == 2)
  time.sleep(delay)
  killed = proc.poll() is None
  proc.kill()
  proc.communicate()

  resumed = subprocess.run([sys.executable, str(script), str(workdir)],
                           capture_output=True, text=True, check=False)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'Resuming from the checkpoint at step ' in resumed.stdout
  with open(workdir / 'results.json') as f:
    outcomes = [h.get('outcome') for h in json.load(f)['history']]
  assert outcomes[0].startswith('Stopped: SIGTERM') and outcomes[-1] == (
      'finished')
  assert _final_checksums(workdir) == expected, (
      f'killed {delay:.1f} s after the resume started (seed {seed}, '
      f'{"before" if killed else "after"} it ended): ' + resumed.stdout)


# The tiny run, sent SIGTERM by itself while it sets up (outside the loop's
# handling), through the commands' own ending (ssljax.cli).
_TERMINATED_IN_SETUP = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from conftest import _shrink
    from configs import vicreg
    from ssljax import cli, train
    config = _shrink(vicreg.get_config('smoke'))
    config.evals = {{}}
    config.data.name = {data_name!r}
    view_grid = train.view_grid
    def terminated(*args):
      os.kill(os.getpid(), signal.SIGTERM)
      return view_grid(*args)
    train.view_grid = terminated
    workdir, sys.argv[1:] = sys.argv[1], []
    cli.run(lambda: train.train_and_evaluate(config, workdir))
''')


@pytest.mark.slow
def test_sigterm_outside_the_loop_ends_in_one_line_and_is_recorded(
    tmp_path, mock_arrays):
  script = tmp_path / 'run.py'
  script.write_text(_TERMINATED_IN_SETUP.format(
      root=ROOT, tests=os.path.join(ROOT, 'tests'), data_name=mock_arrays))
  proc = subprocess.run([sys.executable, str(script), str(tmp_path / 'run')],
                        capture_output=True, text=True, timeout=300,
                        check=False)
  ours = [l for l in proc.stderr.splitlines() if l.startswith('ssljax:')]
  assert proc.returncode == 75 and ours == [
      'ssljax: SIGTERM stopped the command; every checkpoint already '
      'written is complete, and the same command resumes from the newest.'
  ], proc.stderr[-3000:]
  [start] = history_lib.read(str(tmp_path / 'run'))
  assert start['outcome'] == 'KeyboardInterrupt: SIGTERM'
  assert start['to_step'] == 0
