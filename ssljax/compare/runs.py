"""The runs of a comparison: their configs, where each lives, training the
missing ones, and reading the finished ones back.

A run is an arm (a method's config file with the arm's settings), a
preset and a seed. Its workdir is named by a key of what decides its
numbers (`run_key`): the run's whole resolved config, the versions of the
numerical packages, and ssljax's declared `NUMERICS_VERSION`, which a
change that alters results bumps. So a run trained with other settings, or
by code that computes differently, is never mixed into a table: its workdir
stays on disk and a new one is trained; and a refactor, a new module or an
edited docstring leaves every key as it was. Runs are shared by every
comparison under the same root (an ablation's default arm is the main
comparison's run when the settings agree).

A workdir is local to one machine, and a grid built up over sittings may
outlive it (a fresh machine, a Colab session, a cleaned disk). So each
finished or failed run also leaves a summary beside the report
(OUT_DIR/runs/WORKDIR.json: its results.json, its sittings and its scalars
over training), which is kept with the report, and a run whose workdir is
gone is read back from it instead of trained again.
"""
import collections
import copy
import dataclasses
import glob
import hashlib
import importlib.metadata
import json
import math
import os
import resource
import subprocess
import sys
import time

from absl import flags
import ml_collections
from ml_collections import config_flags

import ssljax
from ssljax import budget
from ssljax import cli
from ssljax import defaults
from ssljax import errors
from ssljax import validate
from ssljax.errors import InputError
from ssljax.workdir import events
from ssljax.workdir import provenance

# Packages whose version can change a run's numbers.
NUMERICAL_PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'dm-pix', 'numpy')
RUN_RECORD = 'compare_run.json'  # Beside results.json: sittings, failure.
SUMMARIES = 'runs'  # Under the report's directory: WORKDIR.json per run.
# How a run is trained: WORKDIR and the --config flags are appended.
TRAIN_COMMAND = (sys.executable, '-m', 'ssljax.main')


@dataclasses.dataclass(frozen=True)
class Arm:
  """A row of the comparison: `label`, the config file of `method`, and
  `settings` ('KEY=VALUE', as --config.KEY=VALUE) on top of the preset."""
  label: str
  method: str
  settings: tuple[str, ...] = ()


# The encoder as initialised from each seed, under the same evaluators: the
# baseline every gain is measured from (VICReg's config, so the same
# encoder as every joint-embedding method's at the same preset and seed).
RANDOM_INIT = Arm('random init', 'vicreg', ('train.num_epochs=0',))


@dataclasses.dataclass(frozen=True)
class Run:
  arm: Arm
  seed: int
  config_args: tuple[str, ...]  # The --config flags of ssljax.main.
  config: dict  # Resolved, as results.json records it.
  key: str
  workdir: str
  summary: str  # Its summary (SUMMARIES), kept with the report.


@dataclasses.dataclass(frozen=True)
class Stored:
  """What is kept of a run, from `source` (its workdir or its summary)."""
  source: str
  results: dict | None  # results.json; None if it has not finished.
  record: dict  # RUN_RECORD: {'sittings': [...], 'failure': ...}.
  scalars: dict  # {tag: [(wall_time, step, value)]} over training.

  @property
  def failure(self) -> str | None:
    return self.record.get('failure')


def _load(path: str) -> dict | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _workdir_record(run: Run) -> dict:
  """RUN_RECORD in the run's workdir; no sittings if there is none."""
  return _load(os.path.join(run.workdir, RUN_RECORD)) or {'sittings': []}


def last_sitting(run: Run) -> dict:
  """How the latest sitting of `run` in its workdir went (`train`)."""
  return _workdir_record(run)['sittings'][-1]


def stored(run: Run) -> Stored:
  """The run as it stands: its first kept result (its summary, wherever it
  was trained: a rerun of the key is kept beside it, `keep`), else its
  workdir when it finished or failed there, else a failure kept in its
  summary, else an unfinished run (its sittings so far). A results.json
  made with another config than the run's (a workdir reused by hand)
  raises."""
  summary = _load(run.summary)
  record = _workdir_record(run)
  results = _load(os.path.join(run.workdir, 'results.json'))
  if summary and summary['results'] is not None:
    kept = Stored(run.summary, **summary)
  elif results is not None or record.get('failure'):
    kept = _from_workdir(run, results, record)
  else:
    kept = (Stored(run.summary, **summary) if summary
            else Stored(run.workdir, None, record, {}))
  if kept.results is not None and planned(kept.results) != json.dumps(
      defaults.as_keyed(run.config), sort_keys=True):
    raise InputError(f'{kept.source} was trained with another config than '
                     'its key says; move it away.')
  return kept


def planned(results: dict) -> str:
  """The keyed config (`defaults.as_keyed`, as JSON) that a run with these
  results was planned with: a budget run's config records the length it
  chose (`ssljax.budget`), planned as NaN."""
  config = copy.deepcopy(results['config'])
  if results.get('budget'):
    config['train']['num_epochs'] = math.nan
    for name in results['budget']['quartered']:
      config['evals'][name]['every_epochs'] = math.nan
  return json.dumps(defaults.as_keyed(config), sort_keys=True)


def _from_workdir(run: Run, results: dict | None, record: dict) -> Stored:
  return Stored(run.workdir, results, record,
                events.scalar_events(run.workdir)
                if results and results['steps'] else {})


def reruns(run: Run) -> list[Stored]:
  """The other results of `run`'s key kept beside its summary (`keep`)."""
  stem = run.summary[:-len('.json')]
  def number(path: str) -> int:  # NAME.rerun-N.json, in the order kept.
    return int(path[len(f'{stem}.rerun-'):-len('.json')])
  paths = glob.glob(f'{glob.escape(stem)}.rerun-*.json')
  return [Stored(path, **_load(path)) for path in sorted(paths, key=number)]


def one_machine(kept: Stored) -> dict | None:
  """The machine (`provenance.host`) that trained all of a finished run:
  the one its results record, where every sitting of the runner recorded
  that one too; None for a run trained across machines, or where one of
  them is not recorded."""
  found = (kept.results or {}).get('provenance', {}).get('machine')
  if found is None or not kept.record['sittings'] or any(
      sitting.get('host') != found for sitting in kept.record['sittings']):
    return None
  return found


def trained_here(run: Run, kept: Stored) -> bool:
  """Whether a result of `run` was trained on this machine alone
  (`one_machine`): its first kept result, one kept beside it, or its
  workdir's. A result that does not record its machine was not."""
  workdir = Stored(run.workdir, _load(os.path.join(run.workdir,
                                                   'results.json')),
                   _workdir_record(run), {})
  here = provenance.host()
  return any(one_machine(k) == here for k in (kept, workdir, *reruns(run)))


def keep(run: Run) -> None:
  """Writes the summary of a run that finished or failed in its workdir,
  kept with the report. A summary that holds another finished result (the
  same key trained again, on another host or after its workdir was lost)
  is never overwritten: the workdir's goes beside it as NAME.rerun-N.json,
  and the tables keep the first (`stored`); the report lists both."""
  results = _load(os.path.join(run.workdir, 'results.json'))
  record = _workdir_record(run)
  if results is None and not record.get('failure'):
    return
  first = _load(run.summary)
  if first is None or first['results'] is None or first['results'] == results:
    path = run.summary  # New, a failure retried, or this result again.
  else:
    found = reruns(run)
    path = next((r.source for r in found if r.results == results),
                f'{run.summary[:-len(".json")]}.rerun-{len(found) + 1}.json')
  kept = _load(path)
  if kept and (kept['results'], kept['record']) == (results, record):
    return  # Kept already: its event files need not be read again.
  kept = _from_workdir(run, results, record)
  os.makedirs(os.path.dirname(run.summary), exist_ok=True)
  with open(path, 'w') as f:
    json.dump({'results': kept.results, 'record': kept.record,
               'scalars': kept.scalars}, f, sort_keys=True)


def parse_arm(text: str) -> Arm:
  """'LABEL:METHOD KEY=VALUE ...' (--variant) -> Arm."""
  label, _, rest = text.partition(':')
  words = rest.split()
  if not label.strip() or not words or any('=' not in w for w in words[1:]):
    raise InputError(f'--variant={text!r} must be "LABEL:METHOD KEY=VALUE '
                     '...", e.g. --variant="beta 0:vicreg_tico '
                     'method.beta=0.0".')
  return Arm(label.strip(), words[0], tuple(words[1:]))


def arms(method_names: list[str], variants: list[str], random_init: bool,
         reference: str | None) -> list[Arm]:
  """The arms of --methods, --variant and --random_init; refused if two share
  a label or --reference names none of them."""
  found = [Arm(m, m) for m in method_names]
  found += [parse_arm(v) for v in variants]
  if random_init:
    found.append(RANDOM_INIT)
  labels = [a.label for a in found]
  if len(set(labels)) != len(labels):
    raise InputError(f'Arm labels must differ; got {labels}.')
  if reference is not None and reference not in labels:
    raise InputError(f'--reference={reference} is not an arm; the '
                     f'arms are {labels}.')
  return found


def seeds(texts: list[str]) -> list[int]:
  """The seeds of --seeds, each once: a seed given twice would train in one
  workdir and count twice in every mean, interval and paired test."""
  try:
    found = [int(s) for s in texts]
  except ValueError as e:
    raise InputError(f'--seeds={",".join(texts)} must be integers, '
                     'e.g. --seeds=0,1,2.') from e
  if len(set(found)) != len(found):
    raise InputError(f'--seeds={",".join(texts)} names a seed more '
                     'than once; give each seed once, e.g. --seeds=0,1,2.')
  return found


def numerics() -> dict:
  """What decides a run's numbers besides its config: ssljax's
  NUMERICS_VERSION and the installed versions of NUMERICAL_PACKAGES."""
  found = {'ssljax': ssljax.NUMERICS_VERSION}
  for name in NUMERICAL_PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def run_key(config: dict, numbers: dict) -> str:
  """The key of a run of the resolved `config` (as results.json records
  it) under `numbers` (`numerics()`): 12 hex digits of a sha256."""
  return hashlib.sha256(json.dumps([defaults.as_keyed(config), numbers],
                                  sort_keys=True).encode()).hexdigest()[:12]


def resolve_config(config_args: list[str]) -> ml_collections.ConfigDict:
  """The config that `python -m ssljax.main` builds from `config_args`
  (--config=FILE:PRESET and --config.KEY=VALUE flags), parsed the same way,
  and checked as training checks it; a bad file, key or value raises one
  InputError."""
  argv = ['compare', *config_args]
  parsed = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, '', flag_values=parsed,
                                  lock_config=True, sys_argv=argv)
  try:
    parsed(argv)
    config = parsed.config
    config.keys()  # Loads the file (config_flags defers it).
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'{" ".join(config_args)}: {cli.one_line(e)}') from e
  validate.check(config)
  return budget.resolved(config)


def plan(arms: list[Arm], seeds: list[int], preset: str, settings: list[str],
         root: str, configs_dir: str, out_dir: str) -> list[Run]:
  """Every run of the grid, seed by seed (so that a grid cut short has
  every arm at its first seeds), each config resolved and checked before
  anything is trained."""
  numbers = numerics()
  runs = []
  for seed in seeds:
    for arm in arms:
      path = os.path.join(configs_dir, f'{arm.method}.py')
      if not os.path.exists(path):
        raise InputError(f'No config file {path} for method {arm.method!r}; '
                         f'--configs_dir={configs_dir} holds the configs '
                         '(run from the repository root).')
      config_args = (f'--config={path}:{preset}', f'--config.seed={seed}',
                     *(f'--config.{s}' for s in (*settings, *arm.settings)))
      config = json.loads(resolve_config(list(config_args))
                          .to_json_best_effort())
      key = run_key(config, numbers)
      name = f'{arm.method}-{preset}-seed{seed}-{key}'
      twin = next((r.arm.label for r in runs if r.key == key), None)
      if twin is not None:  # One workdir, counted twice in every statistic.
        raise InputError(f'Arms {twin!r} and {arm.label!r} are the same run '
                         '(the same method and settings); keep one.')
      runs.append(Run(arm, seed, config_args, config, key,
                      os.path.join(root, name),
                      os.path.join(out_dir, SUMMARIES, f'{name}.json')))
  return runs


# How a sitting of a run ended (`train`).
FINISHED, FAILED, STOPPED = 'finished', 'failed', 'stopped'


def train(run: Run, log=sys.stdout) -> str:
  """Trains (or resumes) `run` with TRAIN_COMMAND in a process of its own,
  its output shown and kept in WORKDIR/train.log; records the sitting
  (wall time, CPU time, exit status) in WORKDIR/RUN_RECORD. Returns
  FINISHED; FAILED when the run itself failed (exit status RUN_FAILED: it
  diverged, or the code raised), recorded as the run's failure, a result
  not retried unless asked; or STOPPED when its input or environment
  stopped it (missing data, a busy workdir, a full disk, out of memory, a
  signal from outside), recorded in the sitting only, so that the next
  sitting trains it again. Ctrl-C, or SIGTERM to the runner, stops the run
  at a checkpoint, records the sitting as interrupted (its time counts in
  the run's wall time once it is resumed) and is raised again."""
  os.makedirs(run.workdir, exist_ok=True)
  argv = [*TRAIN_COMMAND, *run.config_args, f'--workdir={run.workdir}']
  record = _workdir_record(run)
  cpu_before = _children_cpu_seconds()
  start = time.time()
  tail = collections.deque(maxlen=5)
  interrupted = None
  with open(os.path.join(run.workdir, 'train.log'), 'a') as kept, \
      subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env={**os.environ, cli.PARENT_ENV: str(
                           os.getpid())}) as process:
    try:
      for line in process.stdout:
        log.write(line)
        kept.write(line)
        tail.append(line.rstrip())
      process.wait()
    except KeyboardInterrupt as e:
      if str(e) == 'SIGTERM':  # To the runner alone (Ctrl-C reaches both).
        process.terminate()
      process.wait()  # It checkpoints and stops.
      interrupted = e
  status, machine = process.returncode, provenance.host()
  last = next((t for t in reversed(tail) if t), 'no output')
  ended = (FINISHED if status == 0 else
           FAILED if status == errors.RUN_FAILED and not interrupted else
           STOPPED)
  record['sittings'].append({
      'started': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(start)),
      'wall_seconds': time.time() - start,
      'cpu_seconds': _children_cpu_seconds() - cpu_before,
      'cpus': machine['cpus'], 'cpu_model': machine['cpu_model'],
      'host': machine,
      'returncode': status, 'interrupted': interrupted is not None,
      'ended': ended, 'last_line': last, 'command': argv})
  record['failure'] = last if ended == FAILED else None
  with open(os.path.join(run.workdir, RUN_RECORD), 'w') as f:
    json.dump(record, f, indent=1)
  if interrupted is not None:
    raise interrupted
  return ended


def _children_cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime
