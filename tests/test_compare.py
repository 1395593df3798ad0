"""The seeded comparison (`python -m ssljax.compare`): its statistics
against SciPy's own tests and Holm's procedure worked by hand, the run keys
(what makes a finished run reusable), the checks before anything is
trained, and, in the slow tier, a grid trained on mock data, read back
instead of retrained, and reported."""
import dataclasses
import glob
import io
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from scipy import stats as scipy_stats

import ssljax
from ssljax import methods
from ssljax.compare import report
from ssljax.compare import runs
from ssljax.compare import stats
from ssljax.errors import InputError
from ssljax.workdir import provenance
from ssljax.workdir import writer as writer_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_estimate_is_the_mean_and_students_t_interval():
  values = [0.61, 0.64, 0.60, 0.66]
  e = stats.estimate(values)
  low, high = scipy_stats.t.interval(0.95, 3, loc=np.mean(values),
                                     scale=scipy_stats.sem(values))
  assert e.n == 4
  assert e.mean == pytest.approx(np.mean(values))
  assert e.std == pytest.approx(np.std(values, ddof=1))
  assert (e.low, e.high) == pytest.approx((low, high))
  one = stats.estimate([0.5])
  assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.low)
  assert stats.estimate([]).n == 0


def test_the_interval_with_test_sampling_covers_the_population_accuracy():
  """Simulated: 3 seeds' accuracies on one shared test set of 10,000 images
  (its binomial sampling error shared by the seeds) plus each seed's own
  spread. Against the accuracy of the whole population of images, the
  interval with test sampling covers at least at its level; the seed-only
  interval (right for comparing arms on the one test set) does not."""
  rng = np.random.default_rng(0)
  truth, num_test, reps = 0.7, 10_000, 1000
  shared = rng.binomial(num_test, truth, reps) / num_test
  values = shared[:, None] + rng.normal(0, 0.004, (reps, 3))
  covered = lambda e: e.low <= truth <= e.high
  widened = [stats.with_test_sampling(v, num_test) for v in values]
  seeds_only = [stats.estimate(v) for v in values]
  coverage = np.mean(list(map(covered, widened)))
  assert 0.95 <= coverage <= 0.99, coverage  # 0.9795 here.
  assert np.mean(list(map(covered, seeds_only))) < 0.88  # 0.799 here.
  assert all(w.low < s.low and s.high < w.high
             for w, s in zip(widened, seeds_only))
  one = stats.with_test_sampling([0.7], num_test)  # Binomial part alone.
  half = 1.959964 * math.sqrt(0.7 * 0.3 / num_test)
  assert (one.low, one.high) == pytest.approx((0.7 - half, 0.7 + half))


def test_paired_difference_is_scipys_paired_t_test_on_common_seeds():
  rng = np.random.default_rng(0)
  a = {s: 0.6 + 0.01 * rng.normal() for s in range(5)}
  b = {s: 0.59 + 0.01 * rng.normal() for s in range(1, 6)}  # Seeds 1-4 shared.
  d = stats.paired_difference(a, b)
  common = [1, 2, 3, 4]
  expected = scipy_stats.ttest_rel([a[s] for s in common],
                                   [b[s] for s in common])
  assert d.estimate.n == 4
  assert d.estimate.mean == pytest.approx(np.mean([a[s] - b[s]
                                                   for s in common]))
  assert d.p == pytest.approx(expected.pvalue)
  # The same difference at every seed is certain; none at all is not.
  assert stats.paired_difference({0: 0.75, 1: 0.5}, {0: 0.5, 1: 0.25}).p == 0
  assert stats.paired_difference({0: 0.7, 1: 0.8}, {0: 0.7, 1: 0.8}).p == 1
  assert math.isnan(stats.paired_difference({0: 0.7}, {0: 0.6}).p)


def test_holm_adjustment_worked_by_hand():
  # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> x4, x3, x2, x1 = 0.04, 0.06,
  # 0.06, 0.5, then made monotone: 0.04, 0.06, 0.06, 0.5.
  assert stats.holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx(
      [0.06, 0.5, 0.04, 0.06])
  assert stats.holm([0.4, 0.3]) == pytest.approx([0.6, 0.6])  # Monotone.
  assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # Capped.
  adjusted = stats.holm([0.02, math.nan, 0.01])
  assert math.isnan(adjusted[1]) and adjusted[::2] == pytest.approx([0.02,
                                                                     0.02])


def test_run_keys_follow_the_config_and_numerics_not_the_code(tmp_path,
                                                            monkeypatch):
  plan = lambda: runs.plan([runs.Arm('vicreg', 'vicreg')], [0], 'smoke', [],
                           str(tmp_path), os.path.join(ROOT, 'configs'),
                           str(tmp_path / 'out'))[0]
  before = plan()
  assert before.key == runs.run_key(before.config, runs.numerics())
  assert runs.numerics()['ssljax'] == ssljax.NUMERICS_VERSION
  # A method added to ssljax/methods/ (a folder added to its path, as a new
  # file there is found) changes no key.
  (tmp_path / 'added').mkdir()
  (tmp_path / 'added' / 'another.py').write_text('def make(config): pass\n')
  monkeypatch.setattr(methods, '__path__',
                      [*methods.__path__, str(tmp_path / 'added')])
  assert 'another' in methods.names()
  assert plan().key == before.key
  # A bumped numerics version does, and so does a package version.
  monkeypatch.setattr(ssljax, 'NUMERICS_VERSION', ssljax.NUMERICS_VERSION + 1)
  assert plan().key != before.key
  assert runs.run_key(before.config, {**runs.numerics(), 'jax': '0.0'}) != (
      runs.run_key(before.config, runs.numerics()))
  # A setting added to ssljax since runs were stored, at the value that
  # computes what they computed, keeps their keys; at another value, not.
  data = before.config['data']
  older = {**before.config, 'data': {k: v for k, v in data.items()
                                     if k not in ('score_on',
                                                  'validation_size')}}
  assert data['score_on'] == 'test'
  assert runs.run_key(older, runs.numerics()) == runs.run_key(
      before.config, runs.numerics())
  assert runs.run_key({**before.config, 'data': {
      **data, 'score_on': 'validation'}}, runs.numerics()) != runs.run_key(
          before.config, runs.numerics())


def test_every_stored_summary_is_named_by_the_key_of_what_it_records():
  """The committed runs are found by their key: a change of `run_key` that
  would orphan them (and retrain ~20 CPU-hours) fails here."""
  paths = sorted(glob.glob(os.path.join(ROOT, 'experiments', 'results',
                                        runs.SUMMARIES, '*.json')))
  assert len(paths) >= 48
  for path in paths:
    with open(path) as f:
      results = json.load(f)['results']
    if results is None:  # A failed run's keeps its command, not a config.
      continue
    versions = results['provenance']['packages']
    # Runs recorded before provenance kept the version were made at 1.
    numbers = {'ssljax': results['provenance'].get('numerics_version', 1), **{
        name: versions[name] for name in runs.NUMERICAL_PACKAGES}}
    config = json.loads(runs.planned(results))  # A budget run's as planned.
    assert os.path.basename(path) == (
        f"{config['method']['name']}-{config['preset']}-seed{config['seed']}"
        f'-{runs.run_key(config, numbers)}.json')


def readme_grids() -> list[list[str]]:
  """The arguments of every `python -m ssljax.compare` command of
  experiments/README.md, the commands of the committed reports."""
  with open(os.path.join(ROOT, 'experiments', 'README.md')) as f:
    text = f.read().replace('\\\n', ' ')
  return [shlex.split(line.split('python -m ssljax.compare', 1)[1])
          for line in text.splitlines()
          if 'python -m ssljax.compare --name=' in line]


_REGENERATE = textwrap.dedent('''
    import json, sys
    from absl import flags
    from ssljax.compare import __main__ as compare
    grids, places = json.loads(sys.argv[1]), sys.argv[2:]
    for args in grids:
      flags.FLAGS.unparse_flags()
      sys.argv = ['compare', *args, '--max_runs=0', *places]
      flags.FLAGS(sys.argv)
      compare.main()
''')


@pytest.mark.slow
def test_every_committed_report_regenerates_from_the_committed_summaries(
    tmp_path):
  """Each report of experiments/results/ that experiments/README.md gives a
  command for is rewritten byte for byte by that command, training
  nothing, from the summaries committed beside it alone."""
  grids = readme_grids()
  assert len(grids) >= 5
  results = os.path.join(ROOT, 'experiments', 'results')
  shutil.copytree(os.path.join(results, runs.SUMMARIES),
                  tmp_path / 'out' / runs.SUMMARIES)
  subprocess.run(
      [sys.executable, '-c', _REGENERATE, json.dumps(grids),
       f'--root={tmp_path / "no_workdirs"}', f'--out_dir={tmp_path / "out"}'],
      cwd=ROOT, check=True, capture_output=True, timeout=300)
  for args in grids:
    name = next(a for a in args if a.startswith('--name=')).split('=', 1)[1]
    with open(os.path.join(results, f'{name}.md')) as committed:
      assert (tmp_path / 'out' / f'{name}.md').read_text() == committed.read(
      ), f'{name}.md does not regenerate from the committed summaries'


def test_arms_from_the_command_line():
  assert runs.parse_arm('beta 0:vicreg_tico method.beta=0.0') == runs.Arm(
      'beta 0', 'vicreg_tico', ('method.beta=0.0',))
  for bad in ('vicreg_tico method.beta=0', 'x:', 'x:tico beta'):
    with pytest.raises(InputError, match='LABEL:METHOD'):
      runs.parse_arm(bad)


def test_plan_resolves_each_runs_config_and_keys_it(tmp_path):
  arms = [runs.Arm('vicreg', 'vicreg'),
          runs.Arm('beta 0', 'vicreg_tico', ('method.beta=0.0',)),
          runs.RANDOM_INIT]
  grid = runs.plan(arms, [0, 1], 'smoke', ['train.num_epochs=0.02'],
                   str(tmp_path), os.path.join(ROOT, 'configs'),
                   str(tmp_path / 'out'))
  assert [(r.arm.label, r.seed) for r in grid] == [
      ('vicreg', 0), ('beta 0', 0), ('random init', 0),
      ('vicreg', 1), ('beta 0', 1), ('random init', 1)]
  assert grid[1].config['method']['beta'] == 0.0
  assert grid[3].config['seed'] == 1
  assert grid[0].config['train']['num_epochs'] == 0.02
  assert grid[2].config['train']['num_epochs'] == 0  # The arm's own wins.
  assert len({r.key for r in grid}) == 6
  assert not any(runs.stored(r).results for r in grid)
  assert grid[0].summary == str(
      tmp_path / 'out' / 'runs' / (os.path.basename(grid[0].workdir)
                                   + '.json'))
  again = runs.plan(arms, [0, 1], 'smoke', ['train.num_epochs=0.02'],
                    str(tmp_path), os.path.join(ROOT, 'configs'),
                    str(tmp_path / 'out'))
  assert [r.workdir for r in again] == [r.workdir for r in grid]
  other = runs.plan(arms[:1], [0], 'smoke', ['train.num_epochs=0.03'],
                    str(tmp_path), os.path.join(ROOT, 'configs'),
                    str(tmp_path / 'out'))
  assert other[0].workdir != grid[0].workdir


def _finish(run, results=None, failure=None, hosts=(None,)):
  """Leaves in `run`'s workdir what a finished (or failed) training does:
  one sitting on each of `hosts` (None: not recorded)."""
  os.makedirs(run.workdir)
  if results is not None:
    with open(os.path.join(run.workdir, 'results.json'), 'w') as f:
      json.dump(results, f)
  with open(os.path.join(run.workdir, runs.RUN_RECORD), 'w') as f:
    json.dump({'sittings': [{'wall_seconds': 60.0, 'cpu_seconds': 90.0,
                             'cpus': 2, **({'host': h} if h else {})}
                            for h in hosts], 'failure': failure}, f)


def test_a_run_whose_workdir_is_gone_is_read_back_from_its_summary(
    tmp_path):
  arms = [runs.Arm('vicreg', 'vicreg'), runs.Arm('tico', 'tico')]
  finished, failed = runs.plan(arms, [0], 'smoke', [], str(tmp_path / 'root'),
                               os.path.join(ROOT, 'configs'),
                               str(tmp_path / 'out'))
  for run in (finished, failed):
    assert runs.stored(run).results is None
    runs.keep(run)  # Unfinished: nothing to keep.
  assert not (tmp_path / 'out').exists()
  _finish(finished, {'config': finished.config, 'steps': 20,
                     'eval_summary': {'linear_probe_accuracy': 0.61}})
  writer = writer_lib.create(finished.workdir)
  writer.write_scalars(10, {'train/loss': 1.5})
  writer.write_scalars(20, {'train/loss': 0.5})
  writer.close()
  _finish(failed, failure='FloatingPointError: the loss is NaN')
  local = {run.key: runs.stored(run) for run in (finished, failed)}
  assert [s for _, s, _ in local[finished.key].scalars['train/loss']] == [
      10, 20]
  for run in (finished, failed):
    assert local[run.key].source == run.workdir
    runs.keep(run)

  shutil.rmtree(tmp_path / 'root')  # Another machine: only the report's.
  for run in (finished, failed):
    again = runs.stored(run)
    assert again.source == run.summary
    assert again.results == local[run.key].results
    assert again.record == local[run.key].record
  assert runs.stored(failed).failure == 'FloatingPointError: the loss is NaN'
  assert [tuple(e) for e in runs.stored(finished).scalars['train/loss']] == (
      local[finished.key].scalars['train/loss'])
  moved = dataclasses.replace(failed, summary=finished.summary)
  with pytest.raises(InputError, match='another config than its key says'):
    runs.stored(moved)

  # The same key trained again elsewhere, to another result: kept beside
  # the first, which stays the run's; the report shows both.
  first = runs.stored(finished)
  _finish(finished, {'config': finished.config, 'steps': 20,
                     'eval_summary': {'linear_probe_accuracy': 0.58}})
  for _ in range(2):  # Kept once, however often the runner keeps.
    runs.keep(finished)
  assert runs.stored(finished) == first
  [again] = runs.reruns(finished)
  assert again.source.endswith('.rerun-1.json')
  assert again.results['eval_summary']['linear_probe_accuracy'] == 0.58
  table = report.rerun_table([(finished, first, again)])
  assert '| vicreg | 0 | 0.6100 (not recorded) | 0.5800 (not recorded) |' in (
      table)
  assert report.rerun_table([]) == ''


def test_a_run_kept_from_another_machine_is_not_trained_here(tmp_path):
  """--again_here trains a run none of whose results was trained on this
  machine alone; once it finished here (its workdir, then the rerun kept
  beside), not. A run resumed across machines has no one machine."""
  [run] = runs.plan([runs.Arm('vicreg', 'vicreg')], [0], 'smoke', [],
                    str(tmp_path / 'root'), os.path.join(ROOT, 'configs'),
                    str(tmp_path / 'out'))
  here, elsewhere = provenance.host(), dict(provenance.host(),
                                            cpu_family='another')
  for machine, probe in ((elsewhere, 0.61), (here, 0.58)):
    _finish(run, {'config': run.config, 'steps': 20,
                  'provenance': {'machine': machine},
                  'eval_summary': {'linear_probe_accuracy': probe}},
            hosts=[machine])
    assert runs.one_machine(runs.stored(run)) == elsewhere  # The first.
    assert runs.trained_here(run, runs.stored(run)) == (probe == 0.58)
    runs.keep(run)
    shutil.rmtree(tmp_path / 'root')
  first = runs.stored(run)  # From elsewhere; the rerun beside is this one.
  assert first.results['eval_summary']['linear_probe_accuracy'] == 0.61
  assert runs.trained_here(run, first)
  [again] = runs.reruns(run)
  assert runs.one_machine(again) == here
  for sittings in ([elsewhere, here], [None, here], []):
    across = runs.Stored('x', again.results, {'sittings': [
        {'host': h} if h else {} for h in sittings]}, {})
    assert runs.one_machine(across) is None


def test_a_budget_run_is_read_back_with_the_length_it_chose(tmp_path):
  """A budget preset is planned with its length to choose (NaN) and
  finishes with the length it chose, which its results record: the same
  run all the same; the same length given outright is another key."""
  [run] = runs.plan([runs.Arm('vicreg', 'vicreg')], [0], 'cpu30', [],
                    str(tmp_path / 'root'), os.path.join(ROOT, 'configs'),
                    str(tmp_path / 'out'))
  assert math.isnan(run.config['train']['num_epochs'])
  chosen = json.loads(json.dumps(run.config))
  chosen['train']['num_epochs'] = 4.45
  for name in ('linear_probe', 'knn'):
    assert math.isnan(chosen['evals'][name]['every_epochs'])
    chosen['evals'][name]['every_epochs'] = 4.45 / 4
  plan = {'num_epochs': 4.45, 'quartered': ['knn', 'linear_probe']}
  _finish(run, {'config': chosen, 'budget': plan, 'steps': 1735,
                'eval_summary': {'linear_probe_accuracy': 0.6}})
  assert runs.stored(run).results['steps'] == 1735
  # A length it did not choose (no plan): another config than its key's.
  shutil.rmtree(run.workdir)
  _finish(run, {'config': chosen, 'budget': None, 'steps': 1735})
  with pytest.raises(InputError, match='another config than its key says'):
    runs.stored(run)
  [given] = runs.plan([runs.Arm('vicreg', 'vicreg')], [0], 'cpu30',
                      ['train.num_epochs=4.45'], str(tmp_path / 'root'),
                      os.path.join(ROOT, 'configs'), str(tmp_path / 'out'))
  assert given.config['evals']['knn']['every_epochs'] == 4.45 / 4
  assert given.key != run.key


@pytest.mark.parametrize('arms,settings,message', [
    ([runs.Arm('x', 'nope')], [], 'No config file'),
    ([runs.Arm('x', 'vicreg')], ['train.nope=1'], 'no such config key'),
    ([runs.Arm('x', 'vicreg')], ['optimizer.learning_rate=-1.0'],
     'Out of range'),
    # Two labels, one workdir: it would count twice in every statistic.
    ([runs.Arm('x', 'vicreg'), runs.Arm('y', 'vicreg', ('seed=0',))], [],
     "Arms 'x' and 'y' are the same run"),
])
def test_a_bad_grid_is_refused_before_anything_trains(arms, settings, message,
                                                      tmp_path):
  with pytest.raises(InputError, match=message):
    runs.plan(arms, [0], 'smoke', settings, str(tmp_path),
              os.path.join(ROOT, 'configs'), str(tmp_path))
  assert not os.listdir(tmp_path)


def _outcome(label, seed, probe=None, failure=None):
  run = runs.Run(runs.Arm(label, label), seed, (), {'train': {'batch_size': 8}},
                 'key', f'/runs/{label}-seed{seed}-key',
                 f'/out/runs/{label}-seed{seed}-key.json')
  results = None if probe is None else {
      'eval_summary': {'linear_probe_accuracy': probe, 'knn_accuracy': 0.5,
                       'rankme': 40.0},
      'steps': 100, 'train_seconds': 10.0}
  return report.Outcome(run, results, failure, 9.0, 0.95, int(bool(probe)))


def test_tables_give_intervals_paired_gains_findings_and_missing_runs():
  probes = {'a': [0.70, 0.72, 0.71], 'b': [0.60, 0.62, 0.61],
            'c': [0.705, 0.69, 0.725], 'random init': [0.30, 0.31, 0.32]}
  grouped = {label: [_outcome(label, s, p) for s, p in enumerate(values)]
             for label, values in probes.items()}
  grouped['d'] = [_outcome('d', 0, 0.5), _outcome('d', 1, failure='diverged'),
                  _outcome('d', 2)]
  table = report.accuracy_table(grouped, 'random init')
  low, high = scipy_stats.t.interval(0.95, 2, loc=0.71,
                                     scale=scipy_stats.sem(probes['a']))
  assert (f'| a | 3 of 3 | 0.7100 ± 0.0100 [{low:.4f}, {high:.4f}] |'
          in table)
  gain = np.subtract(probes['a'], probes['random init'])  # Paired by seed.
  assert f'| {gain.mean():.4f} ± {gain.std(ddof=1):.4f} [' in table
  assert '| d | 1 of 3 | 0.5000 (1 seed) |' in table
  pairs = report.pairwise_table(grouped, 'random init')
  assert len(pairs.splitlines()) == 2 + 6  # a-b, a-c, a-d, b-c, b-d, c-d.
  # a beats b by 0.10 at every seed; a and c differ by seed, not by arm.
  assert ('| a − b | 3 | 0.1000 [0.1000, 0.1000] | 0.000 | 0.000 '
          '| **a higher** |') in pairs
  # Holm over the 3 pairs with 2+ seeds: b - c's p is the 2nd smallest, x2.
  p = scipy_stats.ttest_rel(probes['b'], probes['c']).pvalue
  assert '| b − c | 3 | -0.0967 [' in pairs
  assert f'| {p:.3f} | {2 * p:.3f} | **c higher** |' in pairs
  p = scipy_stats.ttest_rel(probes['a'], probes['c']).pvalue  # The largest.
  assert '| a − c | 3 | 0.0033 [' in pairs
  assert f'| {p:.3f} | {p:.3f} | no significant difference |' in pairs
  assert '| a − d | 1 |' in pairs and 'too few common seeds' in pairs
  # Against a reference arm: only its 3 contrasts, Holm over the 2 testable.
  contrasts = report.pairwise_table(grouped, 'random init', reference='a')
  assert len(contrasts.splitlines()) == 2 + 3
  p = scipy_stats.ttest_rel(probes['c'], probes['a']).pvalue
  assert '| b − a | 3 | -0.1000 [-0.1000, -0.1000] |' in contrasts
  assert '| c − a | 3 | -0.0033 [' in contrasts
  assert f'| {p:.3f} | {p:.3f} | no significant difference |' in contrasts
  assert '| d − a | 1 |' in contrasts and '| b − c |' not in contrasts
  seeds = report.seed_table(grouped)
  assert '| d | 1 | failed: diverged |' in seeds
  assert '| d | 2 | not yet run |' in seeds
  # A run without results keeps the header's columns, so the table renders.
  assert len({row.count('|') for row in seeds.splitlines()}) == 1
  assert '| a | 0 | 0.7000 | 0.5000 | - | 40.0 | 9.0 | 80 | 0.95 |' in seeds
  status = report.status_line([o for arm in grouped.values() for o in arm])
  assert status.startswith('**13 of 15 runs finished**')
  assert '1 failed' in status and '`--retry_failed` trains them' in status
  assert '1 not yet run (the same command trains them)' in status
  assert report.status_line(grouped['a']) == 'All 3 runs finished.'


def test_one_machine_pairs_each_seed_with_a_result_from_the_same_machine():
  """Arm a trained on machine X; the reference r first on Y, then again
  on X at seeds 0 and 1 and on an unrecorded machine at seed 2: on one
  machine, a's seeds 0 and 1 pair with r's results on X and seed 2 is
  left out; the kept tables pair the first results, machine or not."""
  def on(label, seed, probe, where):
    return dataclasses.replace(_outcome(label, seed, probe),
                               machine=where or None)
  a = [on('a', s, p, 'X') for s, p in enumerate([0.60, 0.62, 0.61])]
  r = [on('r', s, p, 'Y') for s, p in enumerate([0.50, 0.52, 0.51])]
  again = [on('r', 0, 0.58, 'X'), on('r', 1, 0.59, 'X'), on('r', 2, 0.4, '')]
  pair = report.on_one_machine(a + r + again, 'linear_probe_accuracy')
  assert pair('a', 'r') == ({0: 0.60, 1: 0.62}, {0: 0.58, 1: 0.59})
  assert pair('r', 'a') == ({0: 0.58, 1: 0.59}, {0: 0.60, 1: 0.62})
  unrecorded = [_outcome('b', 2, 0.3)]  # Not the same machine as r's again.
  assert report.on_one_machine(unrecorded + again,
                               'linear_probe_accuracy')('b', 'r') == ({}, {})
  knn = report.on_one_machine(a + r + again, 'knn_accuracy')
  assert knn('a', 'r') == ({0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.5})
  grouped = {'a': a, 'r': r}
  assert '| a − r | 3 | 0.1000 [' in report.pairwise_table(grouped, None, 'r')
  one = report.pairwise_table(grouped, None, 'r', on_machines=a + r + again)
  assert '| a − r | 2 | 0.0250 [' in one


def test_a_report_with_reruns_adds_the_differences_on_one_machine(tmp_path):
  """The reference's seed 0 trained again on a's machine: the report's
  one-machine table pairs a with that rerun; without reruns it has none."""
  def stored(label, seed, probe, name):
    machine = dict(provenance.host(), cpu_model=name)
    results = {'eval_summary': {'linear_probe_accuracy': probe},
               'steps': 10, 'epochs': 1.0, 'train_seconds': 5.0,
               'provenance': {'host': 'vm', 'git': None,
                              'machine': machine}}
    return (_outcome(label, seed).run, runs.Stored(
        f'{label}{seed}.json', results, {'sittings': [
            {'wall_seconds': 60, 'cpu_seconds': 90, 'cpus': 2,
             'host': machine, 'cpu_model': name}]}, {}))
  kept = [stored('a', s, 0.6 + s / 100, 'X') for s in (0, 1)]
  kept += [stored('r', s, 0.5, 'Y') for s in (0, 1)]
  again = stored('r', 0, 0.55, 'X')[1]
  outcomes = [report.outcome(run, k) for run, k in kept]
  text = report.document('n', 'command', 'p', [0, 1], outcomes, None,
                         str(tmp_path), 'r', [(kept[2][0], kept[2][1], again)])
  one = text.split('## Paired differences on one machine')[1]
  assert '| a − r | 1 | 0.0500 [' in one  # 0.60 - 0.55, at seed 0 alone.
  assert '| a − r | 2 | 0.1050 [' in text  # The kept tables: first results.
  assert 'on one machine' not in report.document(
      'n', 'command', 'p', [0, 1], outcomes, None, str(tmp_path), 'r')


def test_a_start_killed_outright_is_named_and_left_out_of_the_rate():
  """Three starts: 13 steps in 10 s, one killed outright (no end, no time:
  its steps 13-2500 are unknown in time), 233 steps in 124 s."""
  o = _outcome('a', 0, 0.6)
  o.results.update(steps=2733, train_seconds=134.0, history=[
      {'started': 't0', 'from_step': None, 'to_step': 13,
       'train_seconds': 10.0, 'ended': 't1'},
      {'started': 't2', 'from_step': 13},
      {'started': 't3', 'from_step': 2500, 'to_step': 2733,
       'train_seconds': 124.0, 'ended': 't4'}])
  assert o.killed == 1
  # The note an older workdir's history starts with is not a start.
  o.results['history'].insert(0, {'note': 'started before ssljax kept a '
                                           'history'})
  assert o.killed == 1
  assert o.images_per_second == pytest.approx((13 + 233) * 8 / 134.0)
  assert '| 9.0 + 1 killed, untimed | 15 |' in report.seed_table({'a': [o]})
  del o.results['history']  # Results from before history was kept.
  assert o.killed == 0
  assert o.images_per_second == pytest.approx(2733 * 8 / 134.0)


def test_the_header_counts_finished_runs_per_machine():
  outcomes = [dataclasses.replace(_outcome('a', s, 0.6), machine_name=m)
              for s, m in enumerate(['AMD EPYC', 'Intel Xeon', 'AMD EPYC'])]
  outcomes.append(dataclasses.replace(_outcome('a', 3), machine_name='Other'))
  outcomes.append(_outcome('b', 0, 0.6))  # Trained before it was recorded.
  assert report.machine_names(outcomes) == (
      'AMD EPYC: 2 runs; Intel Xeon: 1 run; not recorded: 1 run')
  assert report.machine_names(outcomes[3:4]) == '-'
  # Two machines of one model name are two machines.
  zen3, zen4 = ({'cpu_model': 'AMD EPYC', 'cpu_family': '25',
                 'cpu_model_number': number, 'cpus': 2,
                 'vector_extensions': extensions}
                for number, extensions in (('1', ['avx', 'avx2', 'fma']),
                                           ('17', ['avx2', 'avx512f'])))
  assert provenance.named(zen3) == 'AMD EPYC (family 25, model 1, AVX2)'
  assert provenance.named(zen4) == 'AMD EPYC (family 25, model 17, AVX-512)'
  run = _outcome('a', 0, 0.6).run
  kept = runs.Stored('summary.json', {}, {'sittings': [
      {'wall_seconds': 60, 'cpu_seconds': 90, 'cpus': 2, 'host': machine,
       'cpu_model': 'AMD EPYC'} for machine in (zen3, zen4)]}, {})
  assert report.outcome(run, kept).machine_name == (
      'AMD EPYC (family 25, model 1, AVX2) + '
      'AMD EPYC (family 25, model 17, AVX-512)')


def test_the_header_names_the_split_the_runs_were_scored_on():
  def scored_on(split):
    outcome = _outcome(split, 0, 0.6)
    outcome.results['config'] = {'data': {'score_on': split}}
    return outcome
  earlier = _outcome('a', 0, 0.6)  # Before data.score_on existed: test.
  assert report.scored_split([earlier, scored_on('test')]) == 'test'
  assert report.scored_split([scored_on('validation')]) == 'validation'
  assert report.scored_split([earlier, scored_on('validation')]) == (
      'test and validation')


def test_diagnostics_are_read_at_the_last_log_and_summarised_per_arm():
  def scalars(rankme, top, trace=None):
    logged = {'collapse/feature_rankme': rankme,
              'collapse/embedding_rankme': 2 * rankme,
              'collapse/embedding_std_mean': rankme / 100}
    if trace is not None:
      logged |= {'collapse/running_covariance_effective_rank': rankme / 2,
                 'collapse/running_covariance_eigenvalue_0': top,
                 'collapse/running_covariance_trace': trace}
    # An earlier log with other values: only the last one counts.
    return {tag: [(0.0, 10, -1.0), (1.0, 20, v)] for tag, v in logged.items()}
  grouped = {'with C': [_outcome('with C', s, 0.6) for s in range(3)],
             'no C': [_outcome('no C', 0, 0.6), _outcome('no C', 1)]}
  events = {grouped['with C'][0].run.workdir: scalars(40.0, 0.3, 2.0),
            grouped['with C'][1].run.workdir: scalars(44.0, 0.6, 3.0),
            grouped['with C'][2].run.workdir: scalars(42.0, 0.2, 1.0),
            grouped['no C'][0].run.workdir: scalars(50.0, 0.0)}
  table = report.diagnostics_table(grouped, events)
  low, high = scipy_stats.t.interval(0.95, 2, loc=42.0,
                                     scale=scipy_stats.sem([40, 44, 42]))
  assert (f'| with C | 42.0 ± 2.0 [{low:.1f}, {high:.1f}] | 84.0 ± 4.0 ['
          in table)
  assert '| 0.420 ± 0.020 [' in table
  # The top eigenvalue's share of the trace is taken per run: 0.15, 0.2, 0.2.
  assert '| 0.183 ± 0.029 [' in table and '| 2.0 ± 1.0 [' in table
  assert ('| no C | 50.0 (1 seed) | 100.0 (1 seed) | 0.500 (1 seed) | - | - '
          '| - |') in table
  assert report.diagnostics_table(grouped, {}) == (
      'None yet: no run has trained.')


# `python -m ssljax.compare`, each run trained by `python -m ssljax.main`
# on conftest's mock arrays, as tiny as a run gets.
TINY = ('model.width=0.0625', 'model.projector_widths=(32,32,32)',
        'train.batch_size=16', 'train.num_epochs=1.0', 'eval_batch_size=16',
        'evals.linear_probe.num_steps=30', 'collapse.num_images=0')


def _compare(tmp_path, data_name, *flags):
  return subprocess.run(
      [sys.executable, '-m', 'ssljax.compare', '--name=tiny',
       '--preset=smoke', '--methods=vicreg', '--seeds=0', '--norandom_init',
       f'--root={tmp_path / "runs"}', f'--out_dir={tmp_path / "out"}',
       *(f'--set={s}' for s in (*TINY, f'data.name={data_name}')), *flags],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize('flag,message', [
    ('--reference=vicreg_tico',
     "--reference=vicreg_tico is not an arm; the arms are ['vicreg']"),
    # Both would train in one workdir and count twice in every statistic.
    ('--seeds=0,1,0', '--seeds=0,1,0 names a seed more than once'),
])
def test_a_bad_reference_or_seeds_are_named(flag, message):
  name, value = flag[2:].split('=')
  given = {'method_names': ['vicreg'], 'variants': [], 'random_init': False,
           'reference': None, 'seeds': ['0']}
  given[name] = value.split(',') if name == 'seeds' else value
  with pytest.raises(InputError) as raised:
    runs.seeds(given.pop('seeds'))
    runs.arms(**given)
  assert message in str(raised.value)


def test_a_refused_grid_exits_75_and_writes_nothing(tmp_path, mock_arrays):
  """In a process of its own for the exit status and what is not written
  (the messages: above)."""
  refused = _compare(tmp_path, mock_arrays, '--seeds=0,1,0')
  assert refused.returncode == 75, refused.stderr
  assert 'names a seed more than once' in refused.stderr
  assert not (tmp_path / 'runs').exists()


# 43 s alone, 83 s in CI's slow tier, which it took past CI's 20 minutes
# (1231 s at 05ccb38): run it with SSLJAX_COMPARE_E2E=1 when changing the
# runner.
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('SSLJAX_COMPARE_E2E'),
                    reason='opt-in (SSLJAX_COMPARE_E2E=1): CI time')
def test_a_grid_is_trained_once_read_back_and_reported(tmp_path,
                                                       mock_arrays):
  first = _compare(tmp_path, mock_arrays)
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  assert '1 runs: 0 finished, 1 to train now' in first.stdout
  [workdir] = os.listdir(tmp_path / 'runs')
  with open(tmp_path / 'runs' / workdir / 'results.json') as f:
    accuracy = json.load(f)['eval_summary']['linear_probe_accuracy']
  with open(tmp_path / 'runs' / workdir / runs.RUN_RECORD) as f:
    record = json.load(f)
  assert record['failure'] is None and len(record['sittings']) == 1
  assert record['sittings'][0]['cpu_seconds'] > 0
  assert record['sittings'][0]['cpu_model'] == provenance.cpu_model() != ''
  report = (tmp_path / 'out' / 'tiny.md').read_text()
  assert 'All 1 runs finished.' in report
  assert f'| vicreg | 1 of 1 | {accuracy:.4f} (1 seed) |' in report
  assert f'`{workdir}`' in report
  assert f'CPUs: {provenance.named(provenance.host())}: 1 run;' in report
  for picture in ('tiny_accuracy.png', 'tiny_training.png'):
    assert (tmp_path / 'out' / picture).stat().st_size > 1000

  again = _compare(tmp_path, mock_arrays)  # Read back, not retrained.
  assert again.returncode == 0, again.stderr[-3000:]
  assert '1 runs: 1 finished, 0 to train now' in again.stdout
  assert os.listdir(tmp_path / 'runs') == [workdir]

  # Another machine: the workdir is gone, the report's summary is not.
  os.rename(tmp_path / 'runs', tmp_path / 'elsewhere')
  moved = _compare(tmp_path, mock_arrays)
  assert moved.returncode == 0, moved.stderr[-3000:]
  assert '1 runs: 1 finished, 0 to train now' in moved.stdout
  assert (tmp_path / 'out' / 'tiny.md').read_text() == report
  os.rename(tmp_path / 'elsewhere', tmp_path / 'runs')

  changed = _compare(tmp_path, mock_arrays,
                     '--set=optimizer.learning_rate=0.2',
                     '--max_runs=0')  # Another run: not mixed in.
  assert changed.returncode == 0, changed.stderr[-3000:]
  assert '1 runs: 0 finished, 0 to train now' in changed.stdout
  report = (tmp_path / 'out' / 'tiny.md').read_text()
  # Said on the console: the report is a function of the summaries alone.
  assert '1 other workdirs under' in changed.stdout
  assert 'other workdirs' not in report
  assert '**0 of 1 runs finished**' in report and 'not yet run' in report


def test_an_interrupted_sitting_is_recorded_and_not_a_failure(tmp_path,
                                                             monkeypatch):
  """Ctrl-C reaches the runner and its training process alike; the
  sitting's time must still count once the run resumes, and a run stopped
  at a checkpoint is not a failed one."""
  stops = ('import os, signal, sys, time; print("step 1", flush=True); '
           'os.kill(os.getppid(), signal.SIGINT); time.sleep(0.5); '
           'sys.exit(130)')
  monkeypatch.setattr(runs, 'TRAIN_COMMAND', (sys.executable, '-c', stops))
  run = runs.Run(runs.Arm('a', 'a'), 0, (), {}, 'key',
                 str(tmp_path / 'a-seed0-key'), str(tmp_path / 'a.json'))
  # Ctrl-C raises KeyboardInterrupt here as in a terminal, even where this
  # process inherited it ignored (a shell's background job).
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with pytest.raises(KeyboardInterrupt):
      runs.train(run, log=io.StringIO())
  finally:
    signal.signal(signal.SIGINT, previous)
  with open(os.path.join(run.workdir, runs.RUN_RECORD)) as f:
    record = json.load(f)
  assert record['failure'] is None
  [sitting] = record['sittings']
  assert sitting['interrupted'] and sitting['returncode'] == 130
  assert sitting['wall_seconds'] > 0


def _fake_run(tmp_path, monkeypatch, child: str) -> runs.Run:
  """A run whose training process is the Python code `child`."""
  monkeypatch.setattr(runs, 'TRAIN_COMMAND', (sys.executable, '-c', child))
  return runs.Run(runs.Arm('a', 'a'), 0, (), {}, 'key',
                  str(tmp_path / 'a-seed0-key'), str(tmp_path / 'a.json'))


@pytest.mark.parametrize('child,ended', [
    # TrainingDiverged (errors.RunFailed): the run's own result.
    ('import sys; sys.exit("ssljax: the loss is no longer finite")',
     runs.FAILED),
    # Missing data (an InputError): retried once it is there.
    ('import sys; print("ssljax: no prepared cifar10", file=sys.stderr); '
     'sys.exit(75)', runs.STOPPED),
    # The kernel's out-of-memory killer.
    ('import os, signal; print("step 3", flush=True); '
     'os.kill(os.getpid(), signal.SIGKILL)', runs.STOPPED),
])
def test_only_a_failure_of_the_run_itself_is_kept_as_its_result(
    tmp_path, monkeypatch, child, ended):
  run = _fake_run(tmp_path, monkeypatch, child)
  assert runs.train(run, log=io.StringIO()) == ended
  sitting = runs.last_sitting(run)
  assert sitting['ended'] == ended and not sitting['interrupted']
  assert sitting['host'] == provenance.host() and sitting['host']['cpus'] >= 1
  # What the next sitting reads: a failure is not trained again unless
  # --retry_failed; a stopped run is.
  failure = runs.stored(run).failure
  assert failure == (sitting['last_line'] if ended == runs.FAILED else None)
  assert sitting['last_line'] in ('ssljax: the loss is no longer finite',
                                  'ssljax: no prepared cifar10', 'step 3')


def test_missing_data_stops_a_sitting_and_the_next_trains_the_run(
    tmp_path, monkeypatch):
  data = tmp_path / 'data'
  run = _fake_run(tmp_path, monkeypatch, (
      f'import os, sys\nif not os.path.exists({str(data)!r}):\n'
      '  print("ssljax: no prepared cifar10", file=sys.stderr)\n'
      '  sys.exit(75)'))
  assert runs.train(run, log=io.StringIO()) == runs.STOPPED
  assert runs.stored(run).failure is None
  data.write_text('now here')
  assert runs.train(run, log=io.StringIO()) == runs.FINISHED
  assert [s['ended'] for s in runs.stored(run).record['sittings']] == [
      runs.STOPPED, runs.FINISHED]


_RUNNER = textwrap.dedent('''
    import sys
    from ssljax import cli
    from ssljax.compare import runs
    runs.TRAIN_COMMAND = (sys.executable, '-c', (
        'import os, sys, time\\n'
        'from ssljax import cli\\n'
        'cli.stop_with_parent()  # As every command does first.\\n'
        'with open(sys.argv[-1].split("=", 1)[1] + "/pid", "w") as f:\\n'
        '  f.write(str(os.getpid()))\\n'
        'time.sleep(120)'))
    run = runs.Run(runs.Arm('a', 'a'), 0, (), {{}}, 'key', {workdir!r}, '')
    cli.run(lambda: runs.train(run))
''')


def _alive(pid: int) -> bool:
  """Whether `pid` runs (a zombie no init reaped does not)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except FileNotFoundError:
    return False


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl')
@pytest.mark.parametrize('signum', [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_runner_leaves_no_training_behind(tmp_path, signum):
  """SIGKILL or SIGTERM to the runner alone (a scheduler's, a `kill`): its
  training process ends too, instead of holding the workdir's lock
  orphaned; a SIGTERM the runner could see is recorded as an interrupted
  sitting."""
  workdir = tmp_path / 'run'
  runner = subprocess.Popen(
      [sys.executable, '-c', _RUNNER.format(workdir=str(workdir))], cwd=ROOT,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  pid_file = workdir / 'pid'
  deadline = time.time() + 60
  while not (pid_file.exists() and pid_file.read_text()):
    assert runner.poll() is None and time.time() < deadline, runner.stderr
    time.sleep(0.05)
  child = int(pid_file.read_text())
  runner.send_signal(signum)
  _, stderr = runner.communicate(timeout=60)
  deadline = time.time() + 10
  while _alive(child) and time.time() < deadline:
    time.sleep(0.05)
  assert not _alive(child), 'the training process outlived its runner'
  if signum == signal.SIGTERM:
    assert runner.returncode == 75, stderr
    assert stderr.strip().splitlines() == [
        'ssljax: SIGTERM stopped the command; every checkpoint already '
        'written is complete, and the same command resumes from the newest.']
    with open(workdir / runs.RUN_RECORD) as f:
      [sitting] = json.load(f)['sittings']
    assert sitting['interrupted'] and sitting['ended'] == runs.STOPPED
