"""Command line: `python -m ssljax.main --config=configs/vicreg.py --workdir=DIR`.

Any config value can be overridden, e.g. `--config.train.num_epochs=1`, and a
config file takes a preset after a colon: `--config=configs/vicreg_tico.py:cpu`.
"""
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from ssljax import train
from ssljax.errors import InputError

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Where checkpoints, TensorBoard events and '
                    'results.json go; a workdir with a checkpoint is resumed.')
config_flags.DEFINE_config_file('config', None, 'Config file (and preset).',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  train.quiet_orbax()
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except InputError as e:
    sys.exit(f'ssljax: {e}')


if __name__ == '__main__':
  app.run(main)
