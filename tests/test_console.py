"""The console and DIR/log.txt: every printed line reaches the log whole,
even while another thread logs (orbax logs from its own threads)."""
import os
import subprocess
import sys
import textwrap

import pytest

# Prints numbered lines in pieces, as print() writes them, while a thread
# logs INFO lines to the same file.
SCRIPT = textwrap.dedent('''
    import sys, threading
    sys.setswitchinterval(1e-6)  # Threads switch as often as they can.
    from absl import logging
    from ssljax import console
    logging.set_verbosity(logging.INFO)  # As absl's app.run sets it.
    console.quiet(verbose=False)
    console.log_to(sys.argv[1])
    def chatter():
      for i in range(3000):
        logging.info('absl line %d of a writer thread', i)
    thread = threading.Thread(target=chatter)
    thread.start()
    for i in range(3000):
      print(f'console line {i}', 'in two pieces')
    thread.join()
    sys.stdout.flush()
''')


def test_printed_lines_reach_the_log_whole_beside_another_threads_logging(
    tmp_path):
  proc = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path)],
                        capture_output=True, text=True, check=True)
  printed = [f'console line {i} in two pieces' for i in range(3000)]
  assert proc.stdout.splitlines() == printed  # Only these on the console.
  log = (tmp_path / 'log.txt').read_text().splitlines()
  assert [line for line in log if line.startswith('console')] == printed
  assert sum('of a writer thread' in line for line in log) == 3000
  assert len(log) == 6000  # Nothing merged into another line.


# The same, with DIR/log.txt on a full disk (a link to /dev/full).
FULL = textwrap.dedent('''
    import os, sys
    from absl import logging
    from ssljax import console
    os.symlink('/dev/full', os.path.join(sys.argv[1], 'log.txt'))
    logging.use_absl_handler()  # As absl's app.run does.
    console.quiet(verbose=False)
    console.log_to(sys.argv[1])
    for i in range(3):
      print(f'console line {i}')
      logging.warning('warning %d', i)
    sys.stdout.flush()
''')


def test_a_log_file_on_a_full_disk_stops_the_file_not_the_command(tmp_path):
  proc = subprocess.run([sys.executable, '-c', FULL, str(tmp_path)],
                        capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.splitlines() == [f'console line {i}' for i in range(3)]
  told = [l for l in proc.stderr.splitlines() if 'no longer written' in l]
  assert len(told) == 1 and 'No space left on device' in told[0], proc.stderr
  assert 'Traceback' not in proc.stderr and 'Logging error' not in proc.stderr


@pytest.mark.slow  # Imports TensorFlow: a few seconds.
def test_tensorflow_starts_without_a_word_on_the_console():
  """A run's first read of a TFDS dataset imports TensorFlow; its C++
  start-up notices (oneDNN's among them) stay off the console."""
  env = {k: v for k, v in os.environ.items() if not k.startswith('TF_')}
  result = subprocess.run(
      [sys.executable, '-c', 'from ssljax import console; '
       'console.quiet(verbose=False); import tensorflow'],
      capture_output=True, text=True, timeout=120, env=env, check=True)
  assert result.stdout + result.stderr == ''
