"""Every setting checked in one place, before any compute.

`check(config)` runs first thing in a training run (and an evaluation): an
unknown method, backbone, optimizer or dtype name, a value that would crash
late, train silently on nothing, or lose data (a zero interval, a zero or
negative learning rate, `keep_checkpoints=0`, a probability above 1), or a
batch the devices cannot share stops the run at once with one message
naming each such key, its value and what is allowed. The shared sections'
ranges are RULES below; a method declares the ranges of its own settings
next to its `default_config` (`RANGES` in its module), and so does an
evaluator, so that adding one is one file. `tests/test_validate.py` checks
that every numeric key of every config has a range.
"""
import fnmatch
import importlib
import math
import numbers

import jax
import ml_collections

from ssljax import defaults
from ssljax import evaluators
from ssljax import methods
from ssljax import models
from ssljax import optim
from ssljax.errors import InputError
from ssljax.ranges import AT_LEAST_0, AT_LEAST_1, DECAY, FRACTION, POSITIVE
from ssljax.ranges import OR_CHOSEN, PROBABILITY, between


# The shared sections' (pattern, (check, words)): the first pattern a key
# matches rules it.
RULES = (
    ('train.batch_size', AT_LEAST_1),
    # 0 evaluates the initial encoder; NaN: chosen by the budget.
    ('train.num_epochs', OR_CHOSEN),
    ('train.budget_minutes', AT_LEAST_0),
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
    ('augment.hue', between(0, 0.5)),
    ('augment.brightness', AT_LEAST_0),
    ('augment.contrast', AT_LEAST_0),
    ('augment.saturation', AT_LEAST_0),
    ('augment.blur_sigma', POSITIVE),
    ('augment.blur_kernel_size', AT_LEAST_1),
    ('collapse.num_images', AT_LEAST_0),  # 0 turns them off.
    ('data.validation_size', AT_LEAST_1),
    ('collapse.min_*_fraction', PROBABILITY),
    ('evals.*.every_epochs', OR_CHOSEN),  # NaN: each quarter of the run.
)


# What each shared setting means (`--show_config`): the first pattern a key
# matches. A method's and an evaluator's own settings are in the HELP beside
# their default_config.
HELP = {
    'preset': 'the preset the config file was read with',
    'seed': 'seeds the initialisation, the augmentations and the data order',
    'data.name': 'a TFDS image dataset, folder:PATH of your own images, or '
                 'arrays:PATH unpacked by `python -m ssljax.pack`',
    'data.data_dir': "where TFDS looks ('': $TFDS_DATA_DIR, else "
                     '~/tensorflow_datasets)',
    'data.download': 'let TFDS download and prepare a missing dataset',
    'data.score_on': "what the evaluators score: 'test', or 'validation' "
                     '(images carved from the train split, for choosing)',
    'data.validation_size': "train images carved out when score_on is "
                            "'validation'",
    'augment.image_size': 'side of the augmented views, in pixels',
    'augment.crop_scale': "area range of the random resized crop's box",
    'augment.crop_ratio': "aspect-ratio range of the crop's box",
    'augment.flip_prob': 'probability of a left-right flip (view 1, view 2)',
    'augment.jitter_prob': 'probability of colour jitter (view 1, view 2)',
    'augment.brightness': "colour jitter's brightness strength",
    'augment.contrast': "colour jitter's contrast strength",
    'augment.saturation': "colour jitter's saturation strength",
    'augment.hue': "colour jitter's hue strength (a turn's fraction)",
    'augment.grayscale_prob': 'probability of grey (view 1, view 2)',
    'augment.blur_prob': 'probability of Gaussian blur (view 1, view 2)',
    'augment.blur_sigma': "range of the blur's sigma, in pixels",
    'augment.blur_kernel_size': "side of the blur's kernel, in pixels",
    'augment.solarize_prob': 'probability of solarisation (view 1, view 2)',
    'method.name': 'the method: a module of ssljax/methods',
    'model.backbone': 'the encoder',
    'model.width': "factor on the encoder's channel counts",
    'model.stem_strides': "the stem's stride (2 halves the resolution)",
    'model.dtype': "the computation's dtype (auto: bfloat16 on GPU/TPU, "
                   'float32 on CPU)',
    'model.projector_widths': "the projector MLP's layer widths",
    'model.projector_last_norm': "BatchNorm after the projector's last layer",
    'model.projector_last_bias': "a bias in the projector's last layer",
    'model.predictor_widths': "the predictor MLP's widths (BYOL, SimSiam)",
    'model.online_probe': 'train a linear classifier on the labels alongside',
    'train.batch_size': 'images per step, over all devices',
    'train.num_epochs': 'length of the training (fractions allowed; NaN: '
                        'the longest that budget_minutes allows)',
    'train.budget_minutes': 'minutes the run may take on its machine, all '
                            'included, when num_epochs is NaN (0: none)',
    'train.log_every_steps': 'steps between logs (TensorBoard, console)',
    'train.checkpoint_every_steps': 'steps between checkpoints',
    'train.keep_checkpoints': 'checkpoints kept (the newest)',
    'optimizer.name': 'the optimizer',
    'optimizer.learning_rate': 'peak learning rate per 256 images',
    'optimizer.weight_decay': 'decoupled weight decay',
    'optimizer.momentum': "SGD's and LARS's momentum",
    'optimizer.trust_coefficient': "LARS's trust coefficient",
    'optimizer.b1': "Adam's first-moment decay",
    'optimizer.b2': "Adam's second-moment decay",
    'optimizer.warmup_epochs': 'epochs of linear warm-up',
    'optimizer.min_lr_ratio': "the schedule's end, as a share of the peak",
    'optimizer.decay': 'the decay after warm-up: cosine, or linear',
    'evals.*.every_epochs': 'epochs between evaluations during training (0: '
                            'at the end only)',
    'eval_batch_size': 'images per call of the feature extraction',
    'collapse.num_images': 'held-out images the collapse measures see at '
                           'every log (0: off)',
    'collapse.min_std_fraction': 'warn when the normalised std falls below '
                                 'this share of 1/sqrt(D)',
    'collapse.min_rank_fraction': 'warn when RankMe falls below this share '
                                  'of its largest value',
}


def _own(config: ml_collections.ConfigDict, attribute: str) -> list:
  """[(pattern, entry)] of `attribute` (RANGES or HELP) of the config's
  method and of each evaluator it lists, under 'method.' and
  'evals.<name>.'; a method or evaluator of an unknown name has none."""
  found = []
  if config.method.name in methods.names():
    module = importlib.import_module(f'ssljax.methods.{config.method.name}')
    found += [(f'method.{k}', r) for k, r in getattr(module, attribute,
                                                     {}).items()]
  for name in config.evals:
    if name in evaluators.names():
      module = importlib.import_module(f'ssljax.evaluators.{name}')
      found += [(f'evals.{name}.{k}', r) for k, r in getattr(
          module, attribute, {}).items()]
  return found


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


def rules(config: ml_collections.ConfigDict) -> list[tuple[str, tuple]]:
  """RULES, then the RANGES of the config's method and of each evaluator
  it lists."""
  return list(RULES) + _own(config, 'RANGES')


def ranged(config: ml_collections.ConfigDict, ruled=None,
           prefix: str = '') -> dict:
  """{key: (value, (check, words) of the first of `ruled` (default: the
  config's `rules`) it matches, or None)} of every numeric setting, its key
  after `prefix`."""
  ruled = rules(config) if ruled is None else ruled
  return {key: (value, next((r for pattern, r in ruled
                             if fnmatch.fnmatchcase(key, pattern)), None))
          for key, value in ((prefix + k, v) for k, v in
                             numeric_settings(config).items())}


def _refuse_out_of_range(found: dict):
  """The one InputError naming every setting of `found` (`ranged`) out of
  its range, if any is."""
  wrong = []
  for key, (value, rule) in found.items():
    if rule and not all(rule[0](v) for v in _numbers(value)):
      each = 'each value ' if isinstance(value, (tuple, list)) else ''
      wrong.append(f'config.{key}={value!r} ({each}must be {rule[1]})')
  if wrong:
    raise InputError('Out of range: ' + '; '.join(wrong) + '. Nothing was '
                     'started; set them with --config.KEY=VALUE.')


def check_section(prefix: str, section: ml_collections.ConfigDict,
                  ranges: dict):
  """`check`'s range check of one section (`prefix`: 'evals.knn') against
  its own `ranges` (a method's or an evaluator's RANGES): where an
  evaluator is made, so that none runs out of range whoever made it."""
  _refuse_out_of_range(ranged(
      section, [(f'{prefix}.{k}', r) for k, r in ranges.items()],
      f'{prefix}.'))


def described(config: ml_collections.ConfigDict) -> str:
  """Every setting of `config`, one per line: its value, what it means
  and what it may be (`--show_config`)."""
  meanings = list(HELP.items()) + _own(config, 'HELP')
  allowed = {'method.name': methods.names(),
             'model.backbone': sorted(models.BACKBONES),
             'model.dtype': sorted(models.DTYPES),
             'optimizer.name': sorted(optim.OPTIMIZERS),
             'optimizer.decay': sorted(optim.DECAYS)}
  ruled = ranged(config)
  lines = []
  for key, value in defaults.flat(config.to_dict()).items():
    meaning = next((m for pattern, m in meanings
                    if fnmatch.fnmatchcase(key, pattern)), '')
    found = ruled.get(key, (None, None))[1]
    may = (f'one of {allowed[key]}' if key in allowed
           else f'{found[1]}' if found else '')
    lines.append(f'{key} = {value!r}' + (f'  # {meaning}' if meaning else '')
                 + (f' [{may}]' if may else ''))
  return '\n'.join(lines)


def batch_sizes(config: ml_collections.ConfigDict, num_devices: int):
  """Every batch must split evenly over the devices."""
  sizes = [('train.batch_size', config.train.batch_size),
           ('eval_batch_size', config.eval_batch_size)]
  if config.collapse.num_images:  # 0 turns the diagnostics off.
    sizes.append(('collapse.num_images', config.collapse.num_images))
  for key, value in sizes:
    if value <= 0 or value % num_devices:
      raise InputError(
          f'config.{key}={value} must be a positive multiple of the device '
          f'count ({num_devices}), so that every device gets an equal shard.')


def check(config: ml_collections.ConfigDict):
  """Raises an InputError for an unknown method, backbone, optimizer or
  evaluator name, then one naming every setting out of its range, then
  one for a batch the devices cannot share."""
  methods.check_name(config)
  models.check_names(config)
  optim.check_name(config)
  evaluators.check_names(list(config.evals))
  if math.isnan(config.train.num_epochs) and not (
      config.train.budget_minutes > 0):
    raise InputError(
        'config.train.num_epochs is NaN ("chosen by the budget") but '
        f'config.train.budget_minutes={config.train.budget_minutes} sets no '
        'budget; set --config.train.num_epochs or '
        '--config.train.budget_minutes.')
  _refuse_out_of_range(ranged(config))
  batch_sizes(config, jax.device_count())
