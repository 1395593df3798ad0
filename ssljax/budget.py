"""A training length chosen by wall time, on the machine that runs it.

A budget preset (`cpu10`, `cpu30`, `cpu120`) gives minutes
(`config.train.budget_minutes`), not epochs: its `train.num_epochs` is NaN,
"to be chosen". The run measures what it will spend (`Costs`): the time
already gone (start-up, data loading), its own training step after
compiling (a few dozen timed steps; the host's speed drifts after them,
which MARGIN leaves room for), the evaluations (run once on the initial
encoder: they cost the same at any step less the compiling that only the
first one does, and that first one is the run's accuracy at time zero),
and a log. `length` then fits the most training into what is left, and
the run trains that length with a schedule built for it, recorded as
`train.num_epochs` in the config of its checkpoints, history.json and
results.json: a resume takes the recorded length (`recorded`), and
`--config.train.num_epochs=<recorded>` trains the same run anywhere.
Budgeted training decays the learning rate over the whole budget rather than
cutting a longer schedule short (Li, Yumer & Ramanan, ICLR 2020), which
a length chosen before the first step allows.

An evaluator whose `every_epochs` is NaN runs at each 1/EVALUATIONS of the
run, whatever length is chosen (`with_length`).
"""
import dataclasses
import math
import os
import time

import ml_collections

EVALUATIONS = 4  # An evaluator with NaN `every_epochs` runs at each quarter.
# The share of the training time left that is planned for: a step's speed
# drifts while the run trains. VICReg's `cpu30` on a 2-core AMD EPYC timed
# 0.607 s a step before choosing and then trained at 0.684 s a step on
# average, its 50-step intervals between 160 and 225 images/s
# (experiments/results/cpu_recipes.md).
MARGIN = 0.9
CALIBRATION_STEPS = 20  # Timed after compiling (and one more step).
# Epochs are chosen in hundredths, so that the recorded value is short and
# `int(num_epochs * steps_per_epoch)` gives back the steps planned.
RESOLUTION = 100


def chooses(config: ml_collections.ConfigDict) -> bool:
  """Whether the run's length is still to be chosen by its budget."""
  return math.isnan(config.train.num_epochs)


def quartered(config: ml_collections.ConfigDict) -> list[str]:
  """The evaluators that run at each 1/EVALUATIONS of the run: those whose
  `every_epochs` is NaN until the length is chosen."""
  return [name for name, section in config.evals.items()
          if math.isnan(section.get('every_epochs', 0.0))]


def with_length(config: ml_collections.ConfigDict,
                num_epochs: float) -> ml_collections.ConfigDict:
  """A copy of `config` that trains `num_epochs`, each evaluator with NaN
  `every_epochs` at every 1/EVALUATIONS of that."""
  config = config.copy_and_resolve_references()
  for name in quartered(config):
    config.evals[name].every_epochs = num_epochs / EVALUATIONS
  config.train.num_epochs = num_epochs
  return config


def resolved(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` with its evaluation periods filled in where its length is
  known (`with_length`); unchanged while the budget is still to choose."""
  return config if chooses(config) else with_length(
      config, config.train.num_epochs)


def recorded(config: ml_collections.ConfigDict,
             saved: dict | None) -> ml_collections.ConfigDict:
  """A resumed budget run's config: the length its first start chose, from
  the `saved` config of its newest checkpoint (None: nothing saved)."""
  if not chooses(config) or not saved:
    return config
  return with_length(config, saved['train']['num_epochs'])


_IMPORTED = time.time()


def process_seconds() -> float:
  """Seconds since this process started (Linux's /proc: its imports
  included), else since this module was imported."""
  try:
    with open('/proc/self/stat') as f:  # Field 22, after the command's ')'.
      ticks = int(f.read().rpartition(')')[2].split()[19])
    with open('/proc/uptime') as f:
      uptime = float(f.read().split()[0])
    return uptime - ticks / os.sysconf('SC_CLK_TCK')
  except (OSError, ValueError, IndexError):
    return time.time() - _IMPORTED


@dataclasses.dataclass(frozen=True)
class Costs:
  """What a budget run measured before choosing its length, in seconds."""
  elapsed: float  # Since the process started, when the length is chosen.
  compile: float  # The training step's first call.
  per_step: float  # A training step after compiling.
  # The final evaluation (the features, then every evaluator) and one on
  # the way (the features, then the quartered ones), each without the
  # compiling of its programs, which the first evaluation did (`compiling`;
  # its seconds are in `elapsed`).
  evaluation: float
  periodic_evaluation: float
  per_log: float  # The collapse measures of a log.
  evaluation_compile: float = 0.0  # The first evaluation's compiling.


def length(budget_seconds: float, costs: Costs, steps_per_epoch: int,
           log_every_steps: int) -> dict:
  """The plan of a run that fits `budget_seconds` all included: the epochs
  (in hundredths) whose training, with the compile of its step, the
  EVALUATIONS - 1 evaluations while training (where any evaluator is
  quartered), the final evaluation and a log every `log_every_steps`,
  takes the rest of the budget after `costs.elapsed`, of which MARGIN is
  planned for. A budget too small to train trains the shortest length
  (a hundredth of an epoch, or one step), and the plan says how far over
  it runs."""
  fixed = (costs.elapsed + costs.compile + costs.evaluation
           + (EVALUATIONS - 1) * costs.periodic_evaluation)
  per_step = costs.per_step + costs.per_log / log_every_steps
  steps = max(1, int(MARGIN * (budget_seconds - fixed) / per_step))
  num_epochs = max(math.floor(RESOLUTION * steps / steps_per_epoch),
                   math.ceil(RESOLUTION / steps_per_epoch)) / RESOLUTION
  steps = int(num_epochs * steps_per_epoch)
  return {'budget_seconds': budget_seconds,
          'num_epochs': num_epochs, 'steps': steps,
          'planned_seconds': fixed + steps * per_step,
          **{k: round(v, 3) for k, v in dataclasses.asdict(costs).items()}}
