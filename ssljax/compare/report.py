"""A comparison's write-up: the Markdown tables (mean, std and 95% interval
over seeds, per-seed values, time, paired differences) and two PNG plots
(accuracy per arm with its interval; probe, kNN, RankMe and loss terms
over training), all from what is kept of each run (`runs.stored`: its
results.json, compare_run.json and TensorBoard scalars)."""
import collections
import dataclasses
import json
import math
import os

import numpy as np

from ssljax import pictures
from ssljax.compare import runs as runs_lib
from ssljax.compare import stats
from ssljax.workdir import provenance

# The numbers a table shows: (results.json eval_summary key, heading).
MEASURES = (('linear_probe_accuracy', 'linear probe'),
            ('knn_accuracy', 'kNN'),
            ('multiscale_probe_accuracy', 'multi-scale probe'),
            ('rankme', 'RankMe of the features'))
# Scalars a method logs under train/ that are not terms of its loss.
NOT_LOSS_TERMS = ('learning_rate', 'grad_norm', 'images_per_second',
                  'embedding_std', 'normalized_embedding_std')
# The collapse diagnostics at the last log of training: (heading, digits
# shown, the value from a run's scalars). C is the running covariance of TiCo's covariance
# term (the hybrid's too); its spectrum says how many directions that term
# pushes against, and how much of it the largest one takes.
_C = 'collapse/running_covariance_'
DIAGNOSTICS = (
    ('RankMe, features', 1, lambda e: e['collapse/feature_rankme']),
    ('RankMe, embedding', 1, lambda e: e['collapse/embedding_rankme']),
    # The scale VICReg's variance hinge holds near 1 and a raw covariance
    # term (as the hybrid's) pulls down.
    ('std of the embedding', 3,
     lambda e: e['collapse/embedding_std_mean']),
    ("C's effective rank", 1, lambda e: e[_C + 'effective_rank']),
    ("C's largest eigenvalue / trace", 3,
     lambda e: e[_C + 'eigenvalue_0'] / e[_C + 'trace']),
    ("C's trace", 1, lambda e: e[_C + 'trace']))
# Curves over training: (TensorBoard tag, title).
CURVES = (('linear_probe/test_accuracy', 'linear probe ({} accuracy)'),
          ('knn/accuracy', 'kNN ({} accuracy)'),
          ('collapse/feature_rankme', 'RankMe of the features'))


@dataclasses.dataclass(frozen=True)
class Outcome:
  """A run as the report sees it: its results (None if it has not
  finished), the failure that stopped it (None if none), and its cost."""
  run: runs_lib.Run
  results: dict | None
  failure: str | None
  wall_minutes: float  # Every sitting of the comparison's runner.
  cpu_use: float  # CPU seconds / (wall seconds x CPUs); alone: ~0.83.
  sittings: int
  scalars: dict = dataclasses.field(default_factory=dict)  # Over training.
  machine_name: str = 'not recorded'  # Of its sittings, ' + ' between two.
  # The machine that trained all of it (`runs.one_machine`), as JSON.
  machine: str | None = None

  @property
  def values(self) -> dict:
    return {} if self.results is None else {
        key: self.results['eval_summary'].get(key) for key, _ in MEASURES}

  @property
  def killed(self) -> int:
    """The starts of the run that never recorded their end (killed
    outright, SIGKILL or the machine stopping): their time is not known."""
    history = (self.results or {}).get('history', [])
    return sum('started' in start and 'ended' not in start
               for start in history)

  @property
  def images_per_second(self) -> float:
    """Over the starts that recorded their training time; a start killed
    outright (`killed`) did not, and its steps are left out too."""
    if not self.results:
      return math.nan
    timed = [h for h in self.results.get('history', [])
             if 'train_seconds' in h]
    steps, seconds = ((sum(h['to_step'] - (h['from_step'] or 0)
                           for h in timed),
                       sum(h['train_seconds'] for h in timed)) if timed
                      else (self.results['steps'],
                            self.results['train_seconds']))
    if not seconds:
      return math.nan
    return steps * self.run.config['train']['batch_size'] / seconds


def outcome(run: runs_lib.Run, kept: runs_lib.Stored) -> Outcome:
  sittings = kept.record['sittings']
  wall = sum(s['wall_seconds'] for s in sittings)
  cpu = sum(s['cpu_seconds'] for s in sittings)
  cpus = max((s['cpus'] for s in sittings), default=1)
  models = dict.fromkeys(provenance.named(s['host']) if s.get('host')
                         else s.get('cpu_model', 'not recorded')
                         for s in sittings)
  machine = runs_lib.one_machine(kept)
  return Outcome(run, kept.results, kept.failure, wall / 60,
                 cpu / (wall * cpus) if wall else math.nan, len(sittings),
                 kept.scalars, ' + '.join(models) or 'not recorded',
                 None if machine is None else json.dumps(machine,
                                                         sort_keys=True))


def machine_names(outcomes: list[Outcome]) -> str:
  """'CPU: N runs; ...' over the finished runs (`provenance.named` where
  the sittings recorded their machine): their times compare only within
  one machine."""
  counts = collections.Counter(o.machine_name for o in outcomes
                               if o.results is not None)
  return '; '.join(f'{m}: {n} run{"s" * (n != 1)}'
                   for m, n in counts.most_common()) or '-'


def by_arm(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
  grouped = {}
  for o in outcomes:
    grouped.setdefault(o.run.arm.label, []).append(o)
  return grouped


def seed_values(outcomes: list[Outcome], key: str) -> dict[int, float]:
  return {o.run.seed: o.values[key] for o in outcomes
          if o.results is not None and o.values.get(key) is not None}


def fmt(value: float, digits: int = 4) -> str:
  return '-' if value is None or math.isnan(value) else f'{value:.{digits}f}'


def fmt_estimate(e: stats.Estimate, digits: int = 4) -> str:
  if e.n == 0:
    return '-'
  if e.n == 1:
    return f'{fmt(e.mean, digits)} (1 seed)'
  return (f'{fmt(e.mean, digits)} ± {fmt(e.std, digits)} '
          f'[{fmt(e.low, digits)}, {fmt(e.high, digits)}]')


def accuracy_table(grouped: dict[str, list[Outcome]], baseline: str | None
                   ) -> str:
  """Mean ± std [95% interval] over seeds for each measure, and each arm's
  paired gain over the random-init baseline."""
  shown = [(k, h) for k, h in MEASURES
           if any(seed_values(o, k) for o in grouped.values())]
  lines = ['| arm | seeds finished | ' + ' | '.join(
      f'{h}: mean ± std [95% interval]' for _, h in shown)
           + ' | linear probe over random init (paired) |',
           '|---|---|' + '---|' * len(shown) + '---|']
  base = seed_values(grouped[baseline], MEASURES[0][0]) if baseline else {}
  for label, outcomes in grouped.items():
    cells = [fmt_estimate(stats.estimate(list(seed_values(outcomes, k)
                                              .values())),
                          1 if k == 'rankme' else 4) for k, _ in shown]
    gain = '-'
    if base and label != baseline:
      gain = fmt_estimate(stats.paired_difference(
          seed_values(outcomes, MEASURES[0][0]), base).estimate)
    done = sum(o.results is not None for o in outcomes)
    lines.append(f'| {label} | {done} of {len(outcomes)} | '
                 + ' | '.join(cells) + f' | {gain} |')
  return '\n'.join(lines)


def seed_table(grouped: dict[str, list[Outcome]]) -> str:
  lines = ['| arm | seed | ' + ' | '.join(h for _, h in MEASURES)
           + ' | wall (min) | images/s (training) | CPU use | CPU | workdir |',
           '|---|---|' + '---|' * len(MEASURES) + '---|---|---|---|---|']
  for label, outcomes in grouped.items():
    for o in outcomes:
      if o.results is None:
        state = f'failed: {o.failure}' if o.failure else 'not yet run'
        cells = [state] + [''] * (len(MEASURES) + 1)  # Measures, wall, rate.
      else:
        cells = [fmt(o.values[k], 1 if k == 'rankme' else 4)
                 for k, _ in MEASURES]
        cells += [fmt(o.wall_minutes, 1)
                  + (f' ({o.sittings} sittings)' if o.sittings > 1 else '')
                  + (f' + {o.killed} killed, untimed' if o.killed else ''),
                  fmt(o.images_per_second, 0)]
      cpu, named = ((fmt(o.cpu_use, 2), o.machine_name) if o.sittings
                    else ('', ''))
      lines.append(f'| {label} | {o.run.seed} | ' + ' | '.join(cells)
                   + f' | {cpu} | {named} | '
                   f'`{os.path.basename(o.run.workdir)}` |')
  return '\n'.join(lines)


def on_one_machine(outcomes: list[Outcome], key: str):
  """pair(a, b) -> ({seed: A's `key`}, {seed: B's}) over the seeds where
  arms A and B both have a result trained on one machine alone
  (`Outcome.machine`), reading every result kept of a run, reruns
  included: at each seed, A's results in the order kept (the first, then
  the reruns), the first whose machine B also has."""
  found = {}
  for o in outcomes:
    if o.machine is not None and o.values.get(key) is not None:
      found.setdefault((o.run.arm.label, o.run.seed), {}).setdefault(
          o.machine, o.values[key])

  def pair(a: str, b: str) -> tuple[dict, dict]:
    values_a, values_b = {}, {}
    for (label, seed), on_a in found.items():
      on_b = found.get((b, seed), {})
      common = [m for m in on_a if m in on_b] if label == a else []
      if common:
        values_a[seed], values_b[seed] = on_a[common[0]], on_b[common[0]]
    return values_a, values_b
  return pair


def pairwise_table(grouped: dict[str, list[Outcome]], baseline: str | None,
                   reference: str | None = None,
                   key: str = MEASURES[0][0],
                   on_machines: list[Outcome] | None = None) -> str:
  """Every pair of arms (the baseline aside), or with a `reference` each
  arm against it only (an ablation's planned contrasts: Holm over 7 pairs
  rather than 28 keeps the power to answer what the grid asks): the paired
  difference of `key` over their common seeds, its t-test, Holm-adjusted
  over the table, and the finding in words. With `on_machines` (every
  result kept, reruns included), each seed is paired on one machine
  (`on_one_machine`); otherwise each arm's first kept results are."""
  labels = [label for label in grouped if label != baseline]
  if reference is None:
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
  else:
    pairs = [(a, reference) for a in labels if a != reference]
  def first_kept(a: str, b: str) -> tuple[dict, dict]:
    return seed_values(grouped[a], key), seed_values(grouped[b], key)
  pair = (first_kept if on_machines is None
          else on_one_machine(on_machines, key))
  found = [stats.paired_difference(*pair(a, b)) for a, b in pairs]
  adjusted = stats.holm([d.p for d in found])
  lines = ['| A − B | seeds | difference: mean [95% interval] | p (paired t) '
           '| Holm-adjusted p | finding |', '|---|---|---|---|---|---|']
  for (a, b), d, p in zip(pairs, found, adjusted):
    if math.isnan(p):
      finding = 'too few common seeds'
    elif p < 1 - stats.LEVEL:
      finding = f'**{a if d.estimate.mean > 0 else b} higher**'
    else:
      finding = 'no significant difference'
    interval = (f'{fmt(d.estimate.mean)} [{fmt(d.estimate.low)}, '
                f'{fmt(d.estimate.high)}]')
    lines.append(f'| {a} − {b} | {d.estimate.n} | {interval} | '
                 f'{fmt(d.p, 3)} | {fmt(p, 3)} | {finding} |')
  return '\n'.join(lines)


def final_diagnostics(events: dict) -> dict[str, float]:
  """{heading: value} of DIAGNOSTICS at a run's last log, from its scalars
  ({tag: [(wall_time, step, value)]}); those it did not log are left out."""
  last = {tag: values[-1][2] for tag, values in events.items()}
  found = {}
  for heading, _, value in DIAGNOSTICS:
    try:
      found[heading] = value(last)
    except KeyError:
      pass
  return found


def diagnostics_table(grouped: dict[str, list[Outcome]],
                      events: dict[str, dict]) -> str:
  """Mean ± std [95% interval] over each arm's trained seeds of the
  diagnostics at the end of training; `events` maps a workdir to its
  scalars."""
  per_arm = {label: [final_diagnostics(events[o.run.workdir])
                     for o in outcomes if o.run.workdir in events]
             for label, outcomes in grouped.items()}
  shown = [(h, digits) for h, digits, _ in DIAGNOSTICS
           if any(h in d for runs in per_arm.values() for d in runs)]
  if not shown:
    return 'None yet: no run has trained.'
  lines = ['| arm | ' + ' | '.join(h for h, _ in shown) + ' |',
           '|---|' + '---|' * len(shown)]
  for label, found in per_arm.items():
    if found:
      lines.append(f'| {label} | ' + ' | '.join(
          fmt_estimate(stats.estimate([d[h] for d in found if h in d]),
                       digits)
          for h, digits in shown) + ' |')
  return '\n'.join(lines)


def scored_split(finished: list[Outcome]) -> str:
  """The split the finished runs were scored on (`data.score_on`): 'test'
  (also before the setting existed), 'validation', or 'test and
  validation' when the arms differ, which makes them incomparable."""
  splits = sorted({o.results.get('config', {}).get('data', {}).get(
      'score_on', 'test') for o in finished}) or ['test']
  return ' and '.join(splits)


SCORED_ON = {
    'test': 'Every\naccuracy is on the full test split.',  # Its old wrap.
    'validation': ('Every accuracy is on the validation split carved from '
                   'the train split (`data.score_on=validation`); the test '
                   'split was not read.'),
}


def accuracy_plot(path: str, grouped: dict[str, list[Outcome]], split: str):
  """Each arm's per-seed accuracies (dots) and mean with its 95% interval
  (bar), linear probe and kNN side by side."""
  labels = list(grouped)
  plt = pictures.pyplot()
  figure, axis = plt.subplots(figsize=(max(6, 1.1 * len(labels)), 4.5))
  for offset, (key, heading) in zip((-0.15, 0.15), MEASURES[:2]):
    for x, label in enumerate(labels):
      values = list(seed_values(grouped[label], key).values())
      if not values:
        continue
      e = stats.estimate(values)
      color = 'C0' if key == MEASURES[0][0] else 'C1'
      axis.scatter([x + offset] * len(values), values, s=12, color=color,
                   alpha=0.6)
      error = (None if e.n < 2 else
               [[e.mean - e.low], [e.high - e.mean]])
      axis.errorbar(x + offset, e.mean, yerr=error, fmt='_', color=color,
                    capsize=4, markersize=14,
                    label=heading if x == 0 else None)
  axis.set_xticks(range(len(labels)), labels, rotation=30, ha='right')
  axis.set_ylabel(f'{split} accuracy')
  axis.set_title('mean and 95% interval over seeds; dots: seeds')
  axis.legend()
  axis.grid(axis='y', alpha=0.3)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def _mean_curve(curves: list[list[tuple[int, float]]]):
  """The steps every seed logged and the seeds' mean value at each."""
  steps = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
  values = [dict(c) for c in curves]
  return steps, [float(np.mean([v[s] for v in values])) for s in steps]


def trained_events(outcomes: list[Outcome]) -> dict[str, dict]:
  """{workdir: its scalars} of every finished run that trained."""
  return {o.run.workdir: o.scalars for o in outcomes
          if o.results is not None and o.results['steps']}


def training_plot(path: str, grouped: dict[str, list[Outcome]],
                  events: dict[str, dict], split: str) -> bool:
  """Over training, mean over each arm's finished seeds: the periodic probe
  and kNN, the features' RankMe at every log, and each arm's loss terms.
  False (nothing written) when no run has trained yet."""
  trained = {}
  for label, outcomes in grouped.items():
    finished = [o for o in outcomes if o.run.workdir in events]
    if finished:
      trained[label] = (
          [events[o.run.workdir] for o in finished],
          finished[0].results['steps'] / finished[0].results['epochs'])
  if not trained:
    return False
  columns = 3
  rows = 1 + math.ceil(len(trained) / columns)
  plt = pictures.pyplot()
  figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.3 * rows),
                              squeeze=False)
  for axis, (tag, title) in zip(axes[0], CURVES):
    for label, (events, steps_per_epoch) in trained.items():
      curves = [[(s, v) for _, s, v in e[tag]] for e in events if tag in e]
      if len(curves) == len(events):
        steps, means = _mean_curve(curves)
        axis.plot(np.array(steps) / steps_per_epoch, means, marker='.',
                  label=label)
    axis.set_title(title.format(split))
    axis.set_xlabel('epoch')
    axis.grid(alpha=0.3)
  axes[0][0].legend(fontsize=7)
  for axis, (label, (events, steps_per_epoch)) in zip(axes[1:].flat,
                                                      trained.items()):
    terms = sorted(t for t in events[0] if t.startswith('train/')
                   and t.split('/', 1)[1] not in NOT_LOSS_TERMS)
    for tag in terms:
      steps, means = _mean_curve([[(s, v) for _, s, v in e[tag]]
                                  for e in events])
      axis.plot(np.array(steps) / steps_per_epoch, means,
                label=tag.split('/', 1)[1])
    axis.set_title(f'{label}: loss terms')
    axis.set_xlabel('epoch')
    axis.set_yscale('symlog', linthresh=1e-2)
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
  for axis in axes[1:].flat[len(trained):]:
    axis.axis('off')
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)
  return True


def revision(git: dict | None) -> str:
  if not git:
    return 'unknown (not a git checkout)'
  return git['commit'][:7] + (' with uncommitted changes' if git['dirty']
                              else '')


def status_line(outcomes: list[Outcome]) -> str:
  """How much of the grid is done, and what trains the rest: a missing run
  is trained by the same command, a failed one (a divergence is a result)
  only with --retry_failed."""
  finished = sum(o.results is not None for o in outcomes)
  if finished == len(outcomes):
    return f'All {finished} runs finished.'
  failed = sum(o.results is None and bool(o.failure) for o in outcomes)
  missing = len(outcomes) - finished - failed
  parts = [f'**{finished} of {len(outcomes)} runs finished**; the others '
           'are marked in the per-seed table:']
  if failed:
    parts.append(f'{failed} failed (a failure is reported as the result; '
                 '`--retry_failed` trains them again)')
  if missing:
    parts.append(f'{"and " if failed else ""}{missing} not yet run (the same '
                 'command trains them)')
  return ' '.join(parts) + '.'


def rerun_table(reruns: list[tuple]) -> str:
  """The section of the results kept beside a run's first (`runs.keep`):
  [(run, its first kept Stored, another Stored)], '' where there is none."""
  if not reruns:
    return ''
  lines = ['## Reruns of the same key', '',
           'The same run (key) trained again gave another result, kept beside '
           'the first; the tables above use the first.', '',
           '| arm | seed | first: linear probe (CPU) | again: linear probe '
           '(CPU) |', '|---|---|---|---|']
  for run, first, again in reruns:
    cells = []
    for kept in (first, again):
      o = outcome(run, kept)
      probe = o.values.get('linear_probe_accuracy')
      cells.append(f'{"-" if probe is None else fmt(probe)} '
                   f'({o.machine_name})')
    lines.append(f'| {run.arm.label} | {run.seed} | ' + ' | '.join(cells)
                 + ' |')
  return '\n'.join(lines) + '\n\n'


def document(name: str, command: str, preset: str, seeds: list[int],
             outcomes: list[Outcome], baseline: str | None, out_dir: str,
             reference: str | None = None,
             reruns: list[tuple] = ()) -> str:
  """Writes OUT_DIR/NAME.md and its two plots; returns the Markdown. With a
  `reference` arm, the paired differences are each arm's against it;
  `reruns` (`rerun_table`) get a section of their own."""
  grouped = by_arm(outcomes)
  finished = [o for o in outcomes if o.results is not None]
  split = scored_split(finished)
  plots = []
  if finished:
    accuracy_plot(os.path.join(out_dir, f'{name}_accuracy.png'), grouped,
                  split)
    plots.append(f'![accuracy per arm]({name}_accuracy.png)')
  events = trained_events(outcomes)
  if training_plot(os.path.join(out_dir, f'{name}_training.png'), grouped,
                   events, split):
    plots.append(f'![over training]({name}_training.png)')
  pictures = '\n\n'.join(plots) or 'None yet: no run has finished.'
  hosts = sorted({o.results['provenance']['host'] for o in finished})
  commits = sorted({revision(o.results['provenance'].get('git'))
                    for o in finished})
  status = status_line(outcomes)
  scored_on = SCORED_ON.get(split, f'The arms were scored on different '
                            f'splits ({split}): their accuracies cannot be '
                            'compared.')
  pairs = (f'each arm against {reference}' if reference else
           'every pair of arms')
  same_machine = ''
  if reruns:
    again = [outcome(run, kept) for run, _, kept in reruns]
    table = pairwise_table(grouped, baseline, reference,
                           on_machines=finished + again)
    same_machine = f"""## Paired differences on one machine

The differences above, with each seed paired only where both arms have a
result from one machine (the same CPU family, model number, vector
extensions and cores: a host moves a run about as much as a seed does),
the results kept beside the first included; a seed without such a pair,
and a result that does not record its machine, are left out.

{table}

"""
  text = f"""# Comparison: {name}

Written by `python -m ssljax.compare`; the same command reads the finished
runs back and trains the missing ones:

    {command}

Preset `{preset}`, seeds {', '.join(map(str, seeds))}. {status} {scored_on} Hosts: {', '.join(hosts) or '-'};
CPUs: {machine_names(outcomes)}; ssljax commits: {', '.join(commits) or '-'}.

## Accuracy

Mean ± sample standard deviation over seeds, and the 95% Student-t
interval of the mean. The gain over random init is paired by seed (the
same initial encoder).

{accuracy_table(grouped, baseline)}

## Paired differences, linear probe

Per-seed differences A − B ({pairs}) over the seeds both arms
finished; two-sided paired t-test, Holm-adjusted over the rows of this
table. "No significant difference" is a finding: at this number of seeds,
the difference is within what the seed alone moves.

{pairwise_table(grouped, baseline, reference)}

## Diagnostics at the end of training

Mean ± std [95% interval] over seeds, at the last log of training (on
the held-out images of the collapse diagnostics; the RankMe above is the
final evaluation's): the RankMe of the encoder's features and of the
projector's embedding, and where the method keeps TiCo's running
covariance C, its effective rank (RankMe of its eigenvalues), the share of
its trace in its largest eigenvalue, and its trace.

{diagnostics_table(grouped, events)}

## Per seed

Wall time is the runner's measure of each training process, start-up to
exit (every sitting, if a run was resumed). A start killed outright
(SIGKILL, the machine stopping) recorded no training time: "killed,
untimed", and images/s leaves its steps out; where its runner was killed
with it, that sitting's wall time is missing too. CPU use is the process's CPU
time over wall time x CPUs: a run alone on a 2-core machine uses about
0.83 of it (SimCLR's `cpu30`, sampled over its first 15 minutes); a run
that shared the machine with another busy process gets much less, and its
time is an upper bound.

{seed_table(grouped)}

{rerun_table(list(reruns))}{same_machine}## Plots

{pictures}
"""
  with open(os.path.join(out_dir, f'{name}.md'), 'w') as f:
    f.write(text)
  return text
