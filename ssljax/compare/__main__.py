"""Command line: a seeded comparison of methods on one preset.

  python -m ssljax.compare --name=study_cpu30 --preset=cpu30 \
      --methods=vicreg,tico,vicreg_tico --seeds=0,1,2 \
      [--variant="beta 0:vicreg_tico method.beta=0.0" ...] \
      [--set=train.num_epochs=2 ...] [--reference=LABEL] [--root=DIR] \
      [--max_runs=N] [--again_here]

Trains every arm (each method, each variant, and the random-init encoder)
at every seed, one run at a time, each with `python -m ssljax.main` in its
own workdir under --root, then writes OUT_DIR/NAME.md (mean, std and 95%
interval over seeds, per-seed values, time, paired tests) and its plots.
Finished runs are read back, not redone, so a grid can be built up over
several sittings (--max_runs=N trains at most N runs and reports; 0 only
reports); a run whose code or settings changed gets a new workdir and is
trained again (`ssljax.compare.runs`). Each finished run also leaves its
summary in OUT_DIR/runs/, kept with the report: a run whose workdir is
gone (another machine) is read back from it. Run it from the repository
root.
"""

import glob
import os
import shlex
import sys

from absl import flags

from ssljax import cli
from ssljax import errors
from ssljax import methods
from ssljax.compare import report
from ssljax.compare import runs as runs_lib
from ssljax.errors import InputError

FLAGS = flags.FLAGS
flags.DEFINE_string('name', None, 'The report: OUT_DIR/NAME.md, '
                    'NAME_accuracy.png and NAME_training.png.')
flags.DEFINE_string('preset', None, 'The preset of every run, e.g. cpu30.')
flags.DEFINE_list('methods', methods.names(), 'Methods, by config file name '
                  '(configs/<method>.py), each an arm with its own settings; '
                  'default: every method of ssljax/methods/.')
flags.DEFINE_multi_string('variant', [], '"LABEL:METHOD KEY=VALUE ...": one '
                          'more arm, a method with settings changed.')
flags.DEFINE_list('seeds', ['0', '1', '2'], 'config.seed of each run.')
flags.DEFINE_multi_string('set', [], 'KEY=VALUE: a setting of every run '
                          '(as --config.KEY=VALUE of ssljax.main).')
flags.DEFINE_bool('random_init', True, 'Add the random-init encoder under '
                  'the same evaluators, the baseline of every gain.')
flags.DEFINE_string('reference', None, 'An arm label: test each arm '
                    "against it only (an ablation grid's default), rather "
                    'than every pair.')
flags.DEFINE_string('root', os.path.expanduser('~/ssljax_runs'),
                    'Where the runs live, shared by comparisons.')
flags.DEFINE_string('out_dir', 'experiments/results', 'Where the report goes.')
flags.DEFINE_string('configs_dir', 'configs', 'The config files.')
flags.DEFINE_integer('max_runs', -1, 'Train at most this many runs, then '
                     'report; -1: all that are missing, 0: report only.')
flags.DEFINE_bool('retry_failed', False, 'Train failed runs again (by '
                  'default a failure of the run itself, e.g. divergence, is '
                  "reported as the run's result; one stopped by its input or "
                  'environment, e.g. missing data or out of memory, is '
                  'trained again by the next sitting anyway).')
flags.DEFINE_bool('again_here', False, 'Train again, on this machine, the '
                  'finished runs none of whose kept results was trained on '
                  'this machine alone (one that does not record its machine '
                  'counts as another; a host moves a run about as much as a '
                  'seed does): kept beside the first, which the tables '
                  'keep; the report adds differences paired on one machine.')
flags.mark_flags_as_required(['name', 'preset'])


def runs_of_flags() -> list[runs_lib.Run]:
  """The runs the flags name."""
  return runs_lib.plan(
      runs_lib.arms(FLAGS.methods, FLAGS.variant, FLAGS.random_init,
                    FLAGS.reference),
      runs_lib.seeds(FLAGS.seeds), FLAGS.preset, FLAGS.set, FLAGS.root,
      FLAGS.configs_dir, FLAGS.out_dir)


def main():
  grid = runs_of_flags()
  kept = [runs_lib.stored(r) for r in grid]
  todo = [r for r, k in zip(grid, kept)
          if (k.results is None and (FLAGS.retry_failed or not k.failure))
          or (FLAGS.again_here and k.results is not None
              and not runs_lib.trained_here(r, k))]
  if FLAGS.max_runs >= 0:
    todo = todo[:FLAGS.max_runs]
  finished = sum(k.results is not None for k in kept)
  print(f'{len(grid)} runs: {finished} finished, {len(todo)} to train now, '
        f'under {FLAGS.root}', flush=True)
  ended = {runs_lib.FAILED: [], runs_lib.STOPPED: []}
  for i, run in enumerate(todo):
    print(f'[{i + 1}/{len(todo)}] {run.arm.label}, seed {run.seed}: '
          f'{run.workdir}', flush=True)
    outcome = runs_lib.train(run)
    if outcome != runs_lib.FINISHED:
      ended[outcome].append(run)
  for run in grid:
    runs_lib.keep(run)
  kept = [runs_lib.stored(r) for r in grid]
  planned = {r.workdir for r in grid}
  others = {d for r in grid for d in glob.glob(
      f'{FLAGS.root}/{r.arm.method}-{FLAGS.preset}-seed{r.seed}-*')} - planned
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  # The grid's command: how many runs one sitting trains, and where the
  # runs and the report live, are not part of it.
  command = 'python -m ssljax.compare ' + shlex.join(
      a for a in sys.argv[1:]
      if not a.startswith(('--max_runs', '--root', '--out_dir',
                           '--again_here', '--noagain_here')))
  print(report.document(
      FLAGS.name, command, FLAGS.preset, runs_lib.seeds(FLAGS.seeds),
      [report.outcome(r, k) for r, k in zip(grid, kept)],
      runs_lib.RANDOM_INIT.label if FLAGS.random_init else None,
      FLAGS.out_dir, FLAGS.reference,
      [(r, k, again) for r, k in zip(grid, kept)
       for again in runs_lib.reruns(r)]))
  if others:  # Of this machine, not of the summaries: not in the report.
    print(f'{len(others)} other workdirs under {FLAGS.root} (other code or '
          'settings) are not in these tables.')
  stopped, failed = ended[runs_lib.STOPPED], ended[runs_lib.FAILED]
  if stopped:  # First: the same command goes on with them.
    raise InputError(
        f'{len(stopped)} runs were stopped by their input or environment, '
        'and the same command trains them again: ' + '; '.join(
            f'{r.workdir}: {runs_lib.last_sitting(r)["last_line"]}'
            for r in stopped)
        + (f' ({len(failed)} more failed: the report lists them)'
           if failed else ''))
  if failed:
    raise errors.RunFailed(
        f'{len(failed)} runs failed (the report lists them; their output is '
        'in WORKDIR/train.log; --retry_failed trains them again): '
        + ', '.join(r.workdir for r in failed))


if __name__ == '__main__':
  cli.run(main)
