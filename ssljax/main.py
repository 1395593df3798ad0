"""Command line: `python -m ssljax.main --config=configs/vicreg.py --workdir=DIR`.

Any config value can be overridden, e.g. `--config.train.num_epochs=1`, and a
config file takes a preset after a colon: `--config=configs/vicreg_tico.py:cpu`.
A user error ends in one line (`ssljax.cli`); the console shows the run's
progress, warnings and results, DIR/log.txt everything (`ssljax.console`);
`--verbose` shows the full log and a user error's traceback.

Several hosts train one run as one process each (`ssljax.hosts`): the same
command on every host, plus `--coordinator_address=HOST:PORT
--num_processes=N --process_id=I` where no launcher says so (on TPU VMs,
SLURM and Open MPI JAX finds them itself).
"""

if __name__ == '__main__':  # Before JAX loads: see ssljax.hugepages.
  from ssljax import hugepages
  hugepages.reexec()

import contextlib
import os
import sys

from absl import flags
from ml_collections import config_flags

from ssljax import cli
from ssljax import console
from ssljax import hosts
from ssljax import validate
from ssljax.errors import InputError
from ssljax.workdir import lock

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Where checkpoints, TensorBoard events and '
                    'results.json go; a workdir with a checkpoint is resumed.')
flags.DEFINE_bool('allow_config_change', False, 'Resume a workdir even where '
                  'the config differs from the one its checkpoint was trained '
                  'with in a key that changes the computation (recorded in '
                  'its history.json).')
flags.DEFINE_string('coordinator_address', None, 'HOST:PORT of process 0 '
                    'of a multi-host run, the same on every process.')
flags.DEFINE_integer('num_processes', None, 'Processes of a multi-host run.')
flags.DEFINE_integer('process_id', None, 'This process: 0 ... num_processes-1.')
config_flags.DEFINE_config_file('config', None, 'Config file (and preset).',
                                lock_config=True)
flags.DEFINE_bool('show_config', False, 'Print every setting of the resolved '
                  'config (flags applied), with its meaning and allowed '
                  'values, and exit; needs no --workdir.')
flags.mark_flags_as_required(['config'])


def main():
  if FLAGS.show_config:
    print(validate.described(FLAGS.config))
    return
  if not FLAGS.workdir:
    raise InputError('--workdir is required: where checkpoints, '
                     'TensorBoard events and results.json go.')
  console.quiet(FLAGS.verbose)
  hosts.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                   FLAGS.process_id)
  # A bad value or a busy workdir is refused here, in seconds: before the
  # training stack (the model, the data) has loaded.
  validate.check(FLAGS.config)
  with (lock.exclusive(FLAGS.workdir) if hosts.is_main()
        else contextlib.nullcontext()):
    if hosts.is_main():
      console.log_to(FLAGS.workdir)
    else:  # Process 0 prints for all; errors still show.
      sys.stdout = open(os.devnull, 'w')  # pylint: disable=consider-using-with
    from ssljax import train  # pylint: disable=g-import-not-at-top
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                             FLAGS.allow_config_change)


if __name__ == '__main__':
  cli.run(main)
