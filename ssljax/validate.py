"""Every numeric setting range-checked in one place, before any compute.

`check(config)` runs first thing in a training run: a value that would crash
late, train silently on nothing, or lose data (a zero interval, a zero or
negative learning rate, `keep_checkpoints=0`, a probability above 1) stops
the run at once with one message naming each such key, its value and what
is allowed. Keys are matched by pattern (`fnmatch` on the flat key), so a new
method's `temperature` or `beta` is checked without an entry here;
`tests/test_validate.py` checks that every numeric key of every config
matches a rule. Unknown method, backbone and optimizer names, and batches
the devices cannot share, are refused here too, before the data is loaded.
"""
import fnmatch
import numbers

import jax
import ml_collections

from ssljax import defaults
from ssljax import methods
from ssljax import models
from ssljax import optim
from ssljax import pipeline
from ssljax.errors import InputError


def _range(low=None, high=None, low_open=False, high_open=False):
  """(check, words) of a closed or open interval, applied to a number or to
  every number of a tuple."""
  def inside(v):
    return ((low is None or (v > low if low_open else v >= low)) and
            (high is None or (v < high if high_open else v <= high)))
  words = ' and '.join(w for w in (
      None if low is None else f"{'>' if low_open else '>='} {low}",
      None if high is None else f"{'<' if high_open else '<='} {high}") if w)
  return inside, words


POSITIVE = _range(0, low_open=True)
AT_LEAST_0 = _range(0)
AT_LEAST_1 = _range(1)
PROBABILITY = _range(0, 1)
FRACTION = _range(0, 1, low_open=True)  # (0, 1]
DECAY = _range(0, 1, high_open=True)  # [0, 1)

# (pattern, (check, words)): the first pattern a key matches rules it.
RULES = (
    ('train.batch_size', AT_LEAST_1),
    ('train.num_epochs', AT_LEAST_0),  # 0 evaluates the initial encoder.
    ('train.*_every_steps', AT_LEAST_1),
    ('train.keep_checkpoints', AT_LEAST_1),
    ('eval_batch_size', AT_LEAST_1),
    ('seed', AT_LEAST_0),
    ('optimizer.learning_rate', POSITIVE),
    ('optimizer.weight_decay', AT_LEAST_0),
    ('optimizer.trust_coefficient', POSITIVE),
    ('optimizer.warmup_epochs', AT_LEAST_0),
    ('optimizer.min_lr_ratio', PROBABILITY),
    ('optimizer.momentum', DECAY),
    ('optimizer.b1', DECAY),
    ('optimizer.b2', DECAY),
    ('model.width', POSITIVE),
    ('model.stem_strides', AT_LEAST_1),
    ('model.*_widths', AT_LEAST_1),
    ('augment.image_size', AT_LEAST_1),
    ('augment.crop_scale', FRACTION),
    ('augment.crop_ratio', POSITIVE),
    ('augment.*_prob', PROBABILITY),
    ('augment.hue', _range(0, 0.5)),
    ('augment.brightness', AT_LEAST_0),
    ('augment.contrast', AT_LEAST_0),
    ('augment.saturation', AT_LEAST_0),
    ('augment.blur_sigma', POSITIVE),
    ('augment.blur_kernel_size', AT_LEAST_1),
    ('collapse.num_images', AT_LEAST_0),  # 0 turns them off.
    ('collapse.min_*_fraction', PROBABILITY),
    ('evals.*.every_epochs', AT_LEAST_0),
    ('evals.*.num_images', AT_LEAST_1),
    ('evals.*.num_steps', AT_LEAST_1),
    ('evals.*.holdout_fraction', _range(0, 1, True, True)),
    ('evals.*.l2_grid', AT_LEAST_0),
    ('evals.*.k', AT_LEAST_1),
    ('evals.*.chunk', AT_LEAST_1),
    ('evals.*.stages', AT_LEAST_1),
    ('evals.*.grid', AT_LEAST_1),
    ('evals.*.epochs', AT_LEAST_1),
    ('evals.*.batch_size', AT_LEAST_1),
    ('evals.*.learning_rate', POSITIVE),
    ('evals.*.momentum', DECAY),
    ('evals.*.weight_decay', AT_LEAST_0),
    ('evals.*.perplexity', POSITIVE),
    ('evals.*.crop_scale', FRACTION),
    ('*temperature', POSITIVE),
    ('method.beta', DECAY),
    ('method.base_tau', PROBABILITY),
    ('method.*_prob', PROBABILITY),
    ('method.*_coeff', AT_LEAST_0),
    ('method.nu', AT_LEAST_0),
    ('method.rho', AT_LEAST_0),
    ('method.lambd', AT_LEAST_0),
    ('method.scale', AT_LEAST_0),
    ('method.margin', AT_LEAST_0),
    ('method.num_permutations', _range(2)),
    ('method.*_size', AT_LEAST_1),
    ('method.gap', AT_LEAST_0),
    ('method.jitter', AT_LEAST_0),
)


def numeric_settings(config: ml_collections.ConfigDict) -> dict:
  """{'section.key': value} of every number (or tuple of numbers) of the
  config; booleans are not numbers here."""
  return {k: v for k, v in defaults.flat(config.to_dict()).items()
          if _numbers(v)}


def _numbers(value) -> tuple | None:
  """The numbers of a setting: itself, or the items of a tuple of numbers."""
  items = value if isinstance(value, (tuple, list)) else (value,)
  if items and all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                   for v in items):
    return tuple(items)
  return None


def rule(key: str):
  """The (check, words) of the first rule `key` matches, or None."""
  return next((r for pattern, r in RULES if fnmatch.fnmatchcase(key, pattern)),
              None)


def check(config: ml_collections.ConfigDict):
  """Raises one InputError naming every setting out of its range, then
  one for an unknown method, backbone or optimizer name or a batch the
  devices cannot share."""
  wrong = []
  for key, value in numeric_settings(config).items():
    found = rule(key)
    if found and not all(found[0](v) for v in _numbers(value)):
      each = 'each value ' if isinstance(value, (tuple, list)) else ''
      wrong.append(f'config.{key}={value!r} ({each}must be {found[1]})')
  if wrong:
    raise InputError('Out of range: ' + '; '.join(wrong) + '. Nothing was '
                     'started; set them with --config.KEY=VALUE.')
  methods.check_name(config)
  models.check_names(config)
  optim.check_name(config)
  pipeline.check_batch_sizes(config, jax.device_count())
