"""Command line: evaluate a saved checkpoint without retraining.

  python -m ssljax.evaluate --workdir=DIR [--step=N] [--evals=knn,diagnostics]
      [--set=knn.k=20 --set=sgd_probe.epochs=10 ...]

It rebuilds the run from DIR/config.json, restores the checkpoint of step N
(default: the latest), extracts the encoder features of the train and test
splits once, runs the evaluators on them (default: the linear probe, kNN,
the collapse diagnostics, the t-SNE map and, where the run trained one, the
online probe), and writes DIR/eval/<N>.json,
the pictures as DIR/eval/<N>/*.png and TensorBoard summaries under DIR/eval.
"""

if __name__ == '__main__':  # Before JAX loads: see ssljax.hugepages.
  from ssljax import hugepages
  hugepages.reexec()

import ast
import importlib
import json
import os

from absl import flags
import ml_collections

from ssljax import cli
from ssljax import console
from ssljax import data
from ssljax import defaults
from ssljax import evaluators
from ssljax import features as features_lib
from ssljax import hosts
from ssljax import step as step_lib
from ssljax import validate
from ssljax.errors import InputError
from ssljax.workdir import checkpoints
from ssljax.workdir import writer as writer_lib

DEFAULT_EVALS = ('linear_probe', 'knn', 'diagnostics', 'feature_map',
                 'online_probe')

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'The workdir of a training run.')
flags.DEFINE_integer('step', None, 'The checkpoint to evaluate; default: the '
                     'latest.')
flags.DEFINE_list('evals', list(DEFAULT_EVALS), 'Evaluators to run, by name '
                  f'(any of {evaluators.names()}); their settings come from '
                  "the run's config.evals, else their defaults.")
flags.DEFINE_multi_string('set', [], 'EVALUATOR.KEY=VALUE: changes one '
                          "setting of an evaluator from the run's config or "
                          'its default, e.g. --set=knn.k=20.')
flags.mark_flags_as_required(['workdir'])


def _with_defaults(saved: dict, default: dict) -> dict:
  """`saved` with JSON lists as tuples, and every key of `default` it lacks
  (settings added to ssljax after the run was started)."""
  merged = {key: tuple(value) if isinstance(value, list) else value
            for key, value in saved.items()}
  for key, value in default.items():
    if key not in merged:
      merged[key] = value
    elif isinstance(value, dict) and isinstance(merged[key], dict):
      merged[key] = _with_defaults(merged[key], value)
  for key, value in merged.items():
    if isinstance(value, dict) and key not in default:
      merged[key] = _with_defaults(value, {})
  return merged


def apply_settings(config: ml_collections.ConfigDict, chosen,
                   settings: list[str]):
  """Applies `--set` values (EVALUATOR.KEY=VALUE, VALUE a Python literal or
  else text) to `config.evals`, starting an evaluator the run did not list
  from its defaults."""
  for setting in settings:
    target, _, text = setting.partition('=')
    name, _, key = target.partition('.')
    if not key or name not in set(chosen) & set(evaluators.names()):
      raise InputError(f'--set={setting} must be EVALUATOR.KEY=VALUE for one '
                       f'of the evaluators run ({list(chosen)}).')
    if name not in config.evals:
      config.evals[name] = importlib.import_module(
          f'ssljax.evaluators.{name}').default_config()
    if key not in config.evals[name]:
      raise InputError(f'--set={setting}: {name} has no setting {key!r}; '
                       f'its settings: {sorted(config.evals[name])}.')
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    try:
      config.evals[name][key] = value
    except TypeError as e:
      raise InputError(f'--set={setting}: {e}') from None


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run was started with (its workdir's config.json)."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise InputError(f'{path} does not exist: {workdir!r} is not the workdir '
                     'of an ssljax training run (python -m ssljax.main '
                     'writes config.json there when it starts).')
  with open(path) as f:
    saved = json.load(f)
  default = defaults.get_config(saved.get('preset', 'full')).to_dict()
  return ml_collections.ConfigDict(_with_defaults(saved, default))


def evaluate_checkpoint(workdir: str, step: int | None = None,
                        chosen=DEFAULT_EVALS, settings=()) -> dict:
  """Evaluates the checkpoint of `step` (default: the latest) in `workdir`
  with the evaluators `chosen`, their settings changed by `settings` (see
  `apply_settings`); returns what DIR/eval/<step>.json holds."""
  if not chosen:
    raise InputError('--evals names no evaluator; name some, e.g. '
                     f'--evals=knn,linear_probe (any of {evaluators.names()}).')
  config = load_config(workdir)
  evaluators.check_names(chosen)
  own = {n: evaluators.settings(config, n) for n in chosen}  # The run's.
  apply_settings(config, chosen, list(settings))
  validate.check(config)
  evals = evaluators.make_all(config, chosen)
  # Run with other settings than the run's own: kept beside its results.
  changed = {n: ','.join(f'{k}={v}' for k, v in sorted(e.settings.items())
                         if own[n].get(k) != v)
             for n, e in evals.items() if e.settings != own[n]}
  directory = os.path.join(workdir, 'checkpoints')
  manager = (checkpoints.manager(directory) if os.path.isdir(directory)
             else None)
  steps = sorted(manager.all_steps()) if manager else []
  if not steps:
    raise InputError(f'{directory} holds no checkpoint to evaluate.')
  step = steps[-1] if step is None else step
  if step not in steps:
    raise InputError(f'{directory} holds no checkpoint of step {step}; '
                     f'it holds steps {steps}.')
  splits = data.load_splits(config)
  evals = evaluators.for_labels(evals, splits['train'][1] is not None)
  mesh, info = hosts.data_mesh(), data.describe(*splits['train'])
  state, _ = checkpoints.restore(
      manager, step_lib.build(config, mesh, info).initial_state(), step)
  writer = writer_lib.create(os.path.join(workdir, 'eval'))
  record = evaluators.record(
      writer, workdir, step, evaluators.evaluate(
          features_lib.encoder(config, mesh, info), state, splits, evals),
      evals, changed)
  writer.close()
  return record


def main():
  console.quiet(FLAGS.verbose)
  if os.path.isfile(os.path.join(FLAGS.workdir, 'config.json')):
    console.log_to(FLAGS.workdir)  # A run's workdir: its log goes on.
  evaluate_checkpoint(FLAGS.workdir, FLAGS.step, FLAGS.evals, FLAGS.set)


if __name__ == '__main__':
  cli.run(main)
