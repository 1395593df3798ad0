"""SIGTERM (preemption) and SIGINT stop a run between steps, after it has
checkpointed the step it reached, with one line saying where; the same
command then resumes from there."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ssljax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny VICReg run on mock data: 100 steps, checkpoints every 20.
_RUN = textwrap.dedent('''
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    import tensorflow_datasets as tfds
    from conftest import _shrink
    from configs import vicreg
    from ssljax import cli, train
    from ssljax.errors import InputError
    config = _shrink(vicreg.get_config('smoke'))
    config.model.projector_widths = (32, 32, 32)
    config.train.num_epochs = 25.0
    config.train.log_every_steps = 10
    config.train.checkpoint_every_steps = 20
    config.diagnostics.num_images = 0
    config.evals = {{}}
    with tfds.testing.mock_data(num_examples=64):
      try:
        train.train_and_evaluate(config, sys.argv[1])
      except InputError as e:
        sys.exit(f'ssljax: {{e}}')
''')


def test_sigterm_and_sigint_are_recorded_between_steps_not_raised():
  with train.stop_requests() as stops:
    os.kill(os.getpid(), signal.SIGINT)  # Would be KeyboardInterrupt.
    os.kill(os.getpid(), signal.SIGTERM)  # Would end the process.
    time.sleep(0.01)
  assert stops == ['SIGINT', 'SIGTERM']
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow
def test_sigterm_checkpoints_the_step_reached_then_resume_finishes(tmp_path):
  signum = signal.SIGTERM
  script = tmp_path / 'run.py'
  script.write_text(_RUN.format(root=ROOT, tests=os.path.join(ROOT, 'tests')))
  workdir = tmp_path / 'run'
  proc = subprocess.Popen([sys.executable, str(script), str(workdir)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  first = workdir / 'checkpoints' / '20'
  deadline = time.time() + 300
  while not first.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  assert first.exists(), proc.communicate()
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=300)

  assert proc.returncode == 1, stderr
  line = [l for l in stderr.splitlines() if l.startswith('ssljax:')]
  assert len(line) == 1 and signal.Signals(signum).name in line[0], stderr
  stopped_at = int(line[0].split('after step ')[1].split(',')[0])
  assert 20 < stopped_at < 100  # After the first checkpoint, before the end.
  assert (workdir / 'checkpoints' / str(stopped_at)).is_dir()
  assert f'checkpoints/{stopped_at}; run the same command' in line[0]
  assert not (workdir / 'results.json').exists()

  resumed = subprocess.run([sys.executable, str(script), str(workdir)],
                           capture_output=True, text=True, check=False)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f'Resuming from the checkpoint at step {stopped_at}' in (
      resumed.stdout)
  with open(workdir / 'results.json') as f:
    assert json.load(f)['steps'] == 100
