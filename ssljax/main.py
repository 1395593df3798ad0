"""Command line: `python -m ssljax.main --config=configs/vicreg.py --workdir=DIR`.

Any config value can be overridden, e.g. `--config.train.num_epochs=1`, and a
config file takes a preset after a colon: `--config=configs/vicreg_tico.py:cpu`.
A user error ends in one line (`ssljax.cli`); `--verbose` adds the traceback.
"""
from absl import flags
from ml_collections import config_flags

from ssljax import cli
from ssljax import train

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Where checkpoints, TensorBoard events and '
                    'results.json go; a workdir with a checkpoint is resumed.')
flags.DEFINE_bool('allow_config_change', False, 'Resume a workdir even where '
                  'the config differs from the one its checkpoint was trained '
                  'with in a key that changes the computation (recorded in '
                  'its history.json).')
config_flags.DEFINE_config_file('config', None, 'Config file (and preset).',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main():
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                           FLAGS.allow_config_change)


if __name__ == '__main__':
  cli.run(main)
