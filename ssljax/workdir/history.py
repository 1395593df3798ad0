"""What a restart of a workdir may change, and the record of every start.

A resumed run must compute what the run it continues would have: a
checkpoint restored under another learning rate or seed silently mixes two
experiments. So a resume compares the config with the one saved in the
checkpoint's record and refuses any difference in a key that changes the
computation, unless `--allow_config_change` is given. Bookkeeping keys
(BOOKKEEPING: intervals, evaluators, where the data is, and `num_epochs`,
to extend a run) may change freely. Every start, with its config, the step
it resumed from, what it changed and how it ended, is kept in
DIR/history.json, so that config.json and results.json, which describe the
latest start, never lose what an earlier one was.
"""
import fnmatch
import json
import os
import socket
import time

import ml_collections

from ssljax import defaults
from ssljax.errors import InputError
from ssljax.workdir import jsonfile

HISTORY = 'history.json'

# Keys that do not change what the train step computes (fnmatch patterns).
BOOKKEEPING = (
    'train.log_every_steps',
    'train.checkpoint_every_steps',
    'train.keep_checkpoints',
    'train.num_epochs',  # Extends or shortens the run (and its schedule).
    'eval_batch_size',
    'evals.*',
    'collapse.*',
    'data.data_dir',
    'data.download',
)


def changes(saved: dict, config: ml_collections.ConfigDict) -> dict:
  """{key: [saved value, new value]} of the keys both configs have and
  that differ (a key added to ssljax since the save is not a change)."""
  old = defaults.flat(saved)
  new = defaults.flat(json.loads(config.to_json_best_effort()))  # As saved.
  return {k: [old[k], new[k]] for k in sorted(old.keys() & new.keys())
          if old[k] != new[k]}


def computational(found: dict) -> dict:
  """The changes that are not bookkeeping."""
  return {k: v for k, v in found.items()
          if not any(fnmatch.fnmatchcase(k, p) for p in BOOKKEEPING)}


def check_resume(found: dict, step: int, workdir: str, allowed: bool):
  """Refuses, in one line, a resume at `step` whose changes `found` include
  one that changes the computation, unless `allowed`."""
  refused = computational(found)
  if refused and not allowed:
    listed = ', '.join(f'{k} {a!r} -> {b!r}' for k, (a, b) in refused.items())
    raise InputError(
        f'The checkpoint at step {step} in {workdir} was trained with another '
        f'config: {listed}. Resuming would mix two runs; nothing was changed. '
        'Resume with the values it was trained with (config.json in the '
        'workdir), pass another --workdir to start afresh, or pass '
        f'--allow_config_change to resume anyway (recorded in {HISTORY}).')


def read(workdir: str) -> list[dict]:
  """The starts recorded in `workdir`; a workdir written before the history
  was kept yields one entry holding its config.json."""
  path = os.path.join(workdir, HISTORY)
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  legacy = os.path.join(workdir, 'config.json')
  if os.path.exists(legacy):
    with open(legacy) as f:
      return [{'note': 'started before ssljax kept a history',
               'config': json.load(f)}]
  return []


def start(workdir: str, config: ml_collections.ConfigDict,
          from_step: int | None, found: dict, allowed: bool,
          budget: dict | None = None) -> list[dict]:
  """Appends this start to the history (with the plan of a budget run that
  chose its length in it, `ssljax.budget`), writes it and config.json, and
  returns the history."""
  history = read(workdir) + [{
      'started': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
      'host': socket.gethostname(),
      'pid': os.getpid(),
      'from_step': from_step,
      'config_changes': found,
      'allowed_by_flag': bool(computational(found)) and allowed,
      'config': json.loads(config.to_json_best_effort()),
      **({'budget': budget} if budget else {}),
  }]
  jsonfile.write(os.path.join(workdir, HISTORY), history)
  jsonfile.write(os.path.join(workdir, 'config.json'), history[-1]['config'])
  return history


def finish(workdir: str, history: list[dict], **outcome) -> list[dict]:
  """Records how the latest start ended (`outcome`: its last step, training
  seconds, and 'finished' or why it stopped); returns the history."""
  history[-1].update(ended=time.strftime('%Y-%m-%d %H:%M:%S %Z'), **outcome)
  jsonfile.write(os.path.join(workdir, HISTORY), history)
  return history


def summary(history: list[dict]) -> list[dict]:
  """The history without each start's full config, for results.json."""
  return [{k: v for k, v in h.items() if k != 'config'} for h in history]
