"""Evaluators: what a trained encoder is judged by, as plug-ins.

Each module of this package is one evaluator and defines `default_config()`
and `make(eval_config, config) -> Evaluator`. `config.evals` lists the ones
a run uses, by module name, each with its settings; as in big_vision, each
is built once from its config. The training loop runs every listed
evaluator at the end of training, and every `every_epochs` epochs where that
is set, and `python -m ssljax.evaluate` runs them on any checkpoint. An
evaluator sees `Features`: the encoder features of both splits, extracted
once per evaluation and shared by all of them, the images and labels, and
functions of images bound to the evaluated state (`ssljax.features`), never
the train step. `record` writes an evaluation: each evaluator's numbers and
pictures under its own name in DIR/eval/<step>.json, DIR/eval/<step>/*.png
and TensorBoard.
"""
import dataclasses
import fcntl
import functools
import importlib
import json
import os
import pkgutil
import time
from typing import Any, Callable, NamedTuple, Sequence

import ml_collections
import numpy as np

from ssljax import compiling
from ssljax import features as features_lib
from ssljax import pictures
from ssljax.errors import InputError
from ssljax.workdir import jsonfile


class Features(NamedTuple):
  """What an evaluator sees: the encoder features [N, F] and labels of the
  train and test splits, extracted once and shared; and, for evaluators
  that need more, the uint8 images, the evaluated train state, and two
  functions of images bound to it (`ssljax.features.Encoder`):
    encode(images, readout=None) -> features [N, F] of uint8 images or of
      float views in [0, 1] (or what `readout` makes of the stage maps);
    diagnose(uint8 images) -> the collapse measures of two views of them,
      as the training loop takes them at every log.
  The last five are None where a caller has only features (the benchmark).
  """
  train: np.ndarray
  train_labels: np.ndarray
  test: np.ndarray
  test_labels: np.ndarray
  train_images: np.ndarray | None = None
  test_images: np.ndarray | None = None
  state: Any = None  # step.TrainState
  encode: Callable[..., np.ndarray] | None = None
  diagnose: Callable[[np.ndarray], dict] | None = None


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """run: features -> {name: value}, JSON-serialisable, except 'images':
  {name: uint8 [H, W, 3]} pictures, which are saved as PNG and TensorBoard
  images. Numbers also go to TensorBoard. summary: {key in the evaluation's
  top level: key in run's result}, what is printed after an evaluation and
  what scripts read (`linear_probe_accuracy`). details: result -> more
  lines for the printed table (collapse warnings); none by default.
  needs_labels: whether it reads the labels (a run on unlabelled images
  skips it). settings: what it runs with (its section of config.evals, or
  its defaults), recorded with its result."""
  run: Callable[[Features], dict]
  summary: dict[str, str]
  details: Callable[[dict], list[str]] = lambda result: []
  needs_labels: bool = True
  settings: dict = dataclasses.field(default_factory=dict)


def names() -> list[str]:
  """Every evaluator: the modules of this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__))


def check_names(chosen: Sequence[str]):
  """An unknown evaluator fails naming the allowed values."""
  unknown = sorted(set(chosen) - set(names()))
  if unknown:
    raise InputError(f'Unknown evaluators {unknown}; allowed values: '
                     f'{names()} (config.evals, or --evals of '
                     'ssljax.evaluate).')


def settings(config: ml_collections.ConfigDict, name: str) -> dict:
  """The settings evaluator `name` runs with under `config`: its section of
  config.evals, else its defaults (as JSON has them)."""
  section = (config.evals[name] if name in config.evals else
             importlib.import_module(f'{__name__}.{name}').default_config())
  return json.loads(section.to_json_best_effort())


def make_all(config: ml_collections.ConfigDict,
             chosen: Sequence[str] | None = None) -> dict[str, Evaluator]:
  """The evaluators `chosen` (default: those `config.evals` lists), each
  bound to its settings in `config.evals`, or to its defaults where the
  config has none; an unknown name, or a setting out of its RANGES, fails
  naming the allowed values."""
  # Here, not at the top: validate reads this package's evaluators.
  from ssljax import validate  # pylint: disable=g-import-not-at-top
  chosen = list(config.evals) if chosen is None else list(chosen)
  check_names(chosen)
  built = {}
  for name in chosen:
    module = importlib.import_module(f'{__name__}.{name}')
    eval_config = (config.evals[name] if name in config.evals
                   else module.default_config())
    validate.check_section(f'evals.{name}', eval_config,
                           getattr(module, 'RANGES', {}))
    built[name] = dataclasses.replace(module.make(eval_config, config),
                                      settings=settings(config, name))
  return built


def for_labels(evaluators: dict[str, Evaluator], labelled: bool
               ) -> dict[str, Evaluator]:
  """The evaluators that can run where the data is (not) `labelled`; those
  skipped are named in a note."""
  skipped = [] if labelled else [n for n, e in evaluators.items()
                                 if e.needs_labels]
  if skipped:
    print(f'Note: the images have no labels, so {", ".join(skipped)} '
          'will not run.', flush=True)
  return {n: e for n, e in evaluators.items() if n not in skipped}


def evaluate(encoder: features_lib.Encoder, state, splits: dict,
             evaluators: dict[str, Evaluator]) -> dict:
  """Extracts the features of both splits ({split: (uint8 images, labels)})
  once and runs every evaluator on them: {name: its result, with its
  'seconds' and, of those, its 'compile_seconds'}, plus the extraction's
  'features' {'dim', 'seconds', 'compile_seconds'}; {} when there is no
  evaluator."""
  if not evaluators:
    return {}
  start, compiled = time.time(), compiling.seconds()
  (train_images, train_labels), (test_images, test_labels) = (
      splits['train'], splits['test'])
  features = Features(
      encoder.extract(state, train_images), train_labels,
      encoder.extract(state, test_images), test_labels,
      train_images, test_images, state,
      encode=functools.partial(encoder.extract, state),
      diagnose=lambda images: encoder.measure(
          state, encoder.held_out_views(images)))
  results = {'features': {'dim': int(features.train.shape[1]),
                          'seconds': time.time() - start,
                          'compile_seconds': compiling.seconds() - compiled}}
  for name, evaluator in evaluators.items():
    start, compiled = time.time(), compiling.seconds()
    results[name] = evaluator.run(features)
    results[name].setdefault('seconds', time.time() - start)
    results[name]['compile_seconds'] = compiling.seconds() - compiled
  return results


def summary(results: dict, evaluators: dict[str, Evaluator]) -> dict:
  """{top-level key: number} of an evaluation's results: each evaluator's
  `summary` where its result has the key, and `feature_dim`."""
  top = {'feature_dim': results['features']['dim']}
  for name, evaluator in evaluators.items():
    for key, result_key in evaluator.summary.items():
      if result_key in results[name]:
        top[key] = results[name][result_key]
  return top


def _scalars(prefix: str, results: dict) -> dict:
  """The numbers of an evaluator's results, for TensorBoard."""
  return {f'{prefix}/{k}': v for k, v in results.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool)}


def record(writer, workdir: str, step: int, results: dict,
           evals: dict[str, Evaluator],
           changed: dict[str, str] | None = None) -> dict:
  """Writes an evaluation of the state at `step`: each evaluator's numbers
  and pictures to TensorBoard (`<evaluator>/<key>`, by `writer`:
  `ssljax.workdir.writer`), the pictures as PNG in `workdir/eval/<step>/`, and
  `workdir/eval/<step>.json`, whose top level holds `step`, `feature_dim`
  and every evaluator's summary keys (`linear_probe_accuracy`,
  `knn_accuracy`, `rankme`...) and whose 'evals' holds every result with
  the settings it ran with; an earlier evaluation of the step there keeps
  the results of the evaluators not run now. The results of the evaluators
  `changed` ({name: what differs, 'k=1'}: run with other settings than the
  run's, `ssljax.evaluate --set`) never replace those: they are kept in
  'other_settings', one per distinct settings, and in TensorBoard under
  `<evaluator>[<what differs>]/<key>` (which tensorboardX writes as
  `knn_k_1_/accuracy` for `knn[k=1]/accuracy`). Prints this evaluation's
  summary as a table; returns the JSON's content."""
  changed = changed or {}
  directory = os.path.join(workdir, 'eval', str(step))
  os.makedirs(directory, exist_ok=True)
  for name in evals:
    results[name]['settings'] = evals[name].settings
    tag = f'{name}[{changed[name]}]' if name in changed else name
    for picture, image in results[name].pop('images', {}).items():
      if image is None:  # No matplotlib (`pictures`).
        continue
      pictures.save_png(os.path.join(directory, f'{picture}.png'), image)
      writer.write_images(step, {f'{tag}/{picture}': image[None]})
    writer.write_scalars(step, _scalars(tag, results[name]))
  own = {n: e for n, e in evals.items() if n not in changed}
  path = os.path.join(workdir, 'eval', f'{step}.json')
  # A run's own evaluation and `ssljax.evaluate` may write one step at once.
  with open(os.path.join(workdir, 'eval', '.lock'), 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    record = {'step': step, 'evals': {}}
    if os.path.exists(path):  # An earlier evaluation of this step: keep it.
      with open(path) as f:
        record = json.load(f)
    record.update(summary(results, own))
    if own:  # The features the run's own results now come from.
      record['evals']['features'] = results['features']
    record['evals'].update({n: results[n] for n in own})
    for name in changed:
      kept = record.setdefault('other_settings', {}).setdefault(name, [])
      kept[:] = [r for r in kept if r['settings'] != evals[name].settings]
      kept.append(results[name])
    jsonfile.write(path, record)
  now = summary(results, evals)
  lines = [f'evaluation at step {step} ({path}):']
  width = max(len(key) for key in now) + 2
  lines += [f'  {key:<{width}}{value:.4f}' if isinstance(value, float) else
            f'  {key:<{width}}{value}' for key, value in now.items()]
  for name, what in changed.items():
    lines.append(f'  ({name} with {what}, not the run\'s settings: kept '
                 "under 'other_settings', not replacing its result)")
  for name, evaluator in evals.items():
    lines += [f'  {line}' for line in evaluator.details(results[name])]
  print('\n'.join(lines), flush=True)
  return record
