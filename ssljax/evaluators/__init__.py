"""Evaluators: what a trained encoder is judged by, as plug-ins.

Each module of this package is one evaluator and defines `default_config()`
and `make(eval_config, config) -> Evaluator`. `config.evals` lists the ones
a run uses, by module name, each with its settings; as in big_vision, each
is built once from its config. The training loop runs every listed
evaluator at the end of training, and every `every_epochs` epochs where that
is set, on features extracted once per evaluation and shared by all of them;
it writes each one's numbers under its own name in results.json and
TensorBoard.
"""
import dataclasses
import functools
import importlib
import pkgutil
import time
from typing import Callable, NamedTuple

import jax
import ml_collections
import numpy as np

from ssljax.errors import InputError


class Features(NamedTuple):
  """Encoder features [N, F] and labels of the train and test splits."""
  train: np.ndarray
  train_labels: np.ndarray
  test: np.ndarray
  test_labels: np.ndarray


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """run: features -> {name: value}, JSON-serialisable; scalar values also
  go to TensorBoard. headline: the key printed after an evaluation."""
  run: Callable[[Features], dict]
  headline: str


def names() -> list[str]:
  """Every evaluator: the modules of this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__))


def make_all(config: ml_collections.ConfigDict) -> dict[str, Evaluator]:
  """The evaluators `config.evals` lists, each bound to its settings; an
  unknown name fails naming the allowed values."""
  unknown = sorted(set(config.evals) - set(names()))
  if unknown:
    raise InputError(f'config.evals lists {unknown}, not known evaluators; '
                     f'allowed values: {names()}')
  return {name: importlib.import_module(f'{__name__}.{name}').make(
      eval_config, config) for name, eval_config in config.evals.items()}


def extract_features(encode: Callable[[np.ndarray], jax.Array],
                     images: np.ndarray, batch_size: int) -> np.ndarray:
  """Applies `encode` batch by batch; the last batch is padded so that
  `encode` compiles once, and the padding is dropped."""
  features = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    padded = np.concatenate(
        [batch, np.zeros((batch_size - len(batch),) + batch.shape[1:],
                         batch.dtype)])
    features.append(np.asarray(encode(padded), np.float32)[:len(batch)])
  return np.concatenate(features)


def encoder_features(pipe, state, splits: dict) -> Features:
  """The encoder features of `state` on the train and test splits ({split:
  (uint8 images, labels)}), extracted with the pipeline's jitted encoder,
  the images split over its mesh."""
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  encode = functools.partial(pipe.jitted_features, variables)
  batch_size = pipe.config.eval_batch_size
  return Features(
      extract_features(encode, splits['train'][0], batch_size),
      splits['train'][1],
      extract_features(encode, splits['test'][0], batch_size),
      splits['test'][1])


def evaluate(pipe, state, splits: dict, evaluators: dict[str, Evaluator]
             ) -> dict:
  """Extracts the features once and runs every evaluator on them: {name:
  its result}, plus the extraction's 'features' {'dim', 'seconds'}; {} when
  there is no evaluator."""
  if not evaluators:
    return {}
  start = time.time()
  features = encoder_features(pipe, state, splits)
  results = {'features': {'dim': int(features.train.shape[1]),
                          'seconds': time.time() - start}}
  for name, evaluator in evaluators.items():
    results[name] = evaluator.run(features)
  return results
