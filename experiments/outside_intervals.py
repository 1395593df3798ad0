"""Intervals for comparing a committed report's accuracies with numbers
measured elsewhere (the k-means baseline, a paper's table): each arm's mean
over seeds with the 95% interval that adds the test set's own sampling
error to the seeds' spread (`ssljax.compare.stats.with_test_sampling`),
beside the report's seed-only interval (right for comparing its arms with
each other on the one test set). Read from the report's committed run
summaries; nothing is trained.

  python experiments/outside_intervals.py experiments/results/study_cpu30.md
"""
import re
import shlex
import sys

from absl import flags

from ssljax.compare import __main__ as compare
from ssljax.compare import runs
from ssljax.compare import stats

READOUTS = (('linear_probe_accuracy', 'linear probe'),
            ('multiscale_probe_accuracy', 'multi-scale probe'))


def main(report: str):
  with open(report) as f:
    command = re.search(r'python -m ssljax\.compare (.*)', f.read())[1]
  flags.FLAGS(['compare', *shlex.split(command), '--max_runs=0'])
  grid = compare.runs_of_flags()
  print(f'{report}, 95% intervals: over the seeds on this test set | with '
        "the test set's sampling error too\n")
  print('| arm | ' + ' | '.join(f'{name}: seeds | with test sampling'
                                for _, name in READOUTS) + ' |')
  print('|---|' + '---|---|' * len(READOUTS))
  arms = {}
  for run in grid:
    arms.setdefault(run.arm.label, []).append(runs.stored(run).results)
  for label, results in arms.items():
    cells = []
    for key, _ in READOUTS:
      found = [r for r in results if r and key in r['eval_summary']]
      values = [r['eval_summary'][key] for r in found]
      num_test = {sum(map(sum, r['evals']['linear_probe']['confusion_matrix']))
                  for r in found}
      if not values:
        cells += ['-', '-']
        continue
      [num_test] = num_test
      seeds = stats.estimate(values)
      wide = stats.with_test_sampling(values, num_test)
      cells += [f'{seeds.mean:.4f} [{seeds.low:.4f}, {seeds.high:.4f}]',
                f'[{wide.low:.4f}, {wide.high:.4f}] ({num_test:,} images)']
    print(f'| {label} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  main(sys.argv[1])
