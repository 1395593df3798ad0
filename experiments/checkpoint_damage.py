"""How often damage to a checkpoint's bytes goes unseen, by orbax alone and
with ssljax's verification.

Copies one step of a workdir's checkpoints, overwrites 64 bytes at each of
N evenly spaced offsets of its largest state file (one copy per offset),
restores each copy, and sorts the outcomes: orbax raised (it saw the
damage), restored but the checksums or finiteness check caught it, or
restored identical (the bytes were not used), or restored different and
unseen (what orbax alone would have resumed from).

  python experiments/checkpoint_damage.py --workdir=DIR --step=39 --tries=40
"""
import collections
import glob
import os
import shutil
import tempfile

from absl import app
from absl import flags
import orbax.checkpoint as ocp

from ssljax.workdir import checkpoints

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A workdir with checkpoints.')
flags.DEFINE_integer('step', None, 'The step to damage copies of.')
flags.DEFINE_integer('tries', 40, 'Offsets tried, one copy each.')
flags.mark_flags_as_required(['workdir', 'step'])


def outcome(directory: str, step: int, state, record: dict) -> str:
  """What a restore of the (damaged) copy in `directory` gives."""
  manager = checkpoints.manager(directory)
  try:
    raw = manager.restore(step, args=ocp.args.Composite(
        default=ocp.args.StandardRestore(state)))['default']
  except Exception:  # pylint: disable=broad-except
    return 'orbax raised'
  if checkpoints.checksums(raw) == record['checksums']:
    return 'restored identical (damage in unused bytes)'
  try:
    checkpoints.restore(manager, state, step)
  except checkpoints.Damaged:
    return 'restored different: caught by checksums/finiteness'
  return 'restored different: UNSEEN'


def main(argv):
  del argv
  source = os.path.join(FLAGS.workdir, 'checkpoints')
  manager = checkpoints.manager(source)
  record = checkpoints.read_record(manager, FLAGS.step)
  state = manager.restore(FLAGS.step, args=ocp.args.Composite(
      default=ocp.args.StandardRestore()))['default']
  files = [p for p in glob.glob(os.path.join(
      source, str(FLAGS.step), 'default', '**', '*'), recursive=True)
           if os.path.isfile(p)]
  largest = max(files, key=os.path.getsize)
  relative = os.path.relpath(largest, source)
  size = os.path.getsize(largest)
  counts = collections.Counter()
  for i in range(FLAGS.tries):
    offset = int(size * (i + 0.5) / FLAGS.tries)
    with tempfile.TemporaryDirectory() as tmp:
      shutil.copytree(os.path.join(source, str(FLAGS.step)),
                      os.path.join(tmp, str(FLAGS.step)))
      with open(os.path.join(tmp, relative), 'r+b') as f:
        f.seek(offset)
        f.write(b'\0' * 64)
      counts[outcome(tmp, FLAGS.step, state, record)] += 1
  print(f'{FLAGS.tries} copies of step {FLAGS.step}, 64 zero bytes each in '
        f'{relative} ({size} bytes):')
  for name, count in counts.most_common():
    print(f'  {count:3d}  {name}')


if __name__ == '__main__':
  app.run(main)
