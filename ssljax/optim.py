"""Optimizers and the learning-rate schedule, all from optax."""
from typing import Any

import jax
import ml_collections
import optax

from ssljax.errors import InputError


def _decay_mask(params: Any) -> Any:
  """True for weight matrices and convolution kernels; False for biases and
  BatchNorm scales/offsets, which SSL recipes exclude from weight decay and from
  LARS adaptation (You et al. 2017; BYOL/VICReg/Barlow Twins)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _cosine(peak: float, warmup: int, total_steps: int, end: float):
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=end)


def _linear(peak: float, warmup: int, total_steps: int, end: float):
  """Linear decay to the end over the budget, which Li, Yumer & Ramanan
  (2020, "Budgeted training") find best when the length is fixed."""
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup),
       optax.linear_schedule(peak, end, max(total_steps - warmup, 1))],
      [warmup])


DECAYS = {'cosine': _cosine, 'linear': _linear}


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           steps_per_epoch: int,
                           total_steps: int) -> optax.Schedule:
  """Linear warmup to the peak, then decay (`optimizer.decay`: cosine or
  linear) to `min_lr_ratio * peak` at the last step.

  The peak follows the linear scaling rule: lr = base_lr * batch_size / 256.
  """
  opt = config.optimizer
  peak = opt.learning_rate * config.train.batch_size / 256
  warmup = min(int(opt.warmup_epochs * steps_per_epoch), total_steps)
  return DECAYS[opt.decay](peak, warmup, total_steps, peak * opt.min_lr_ratio)


def _lars(schedule, opt):
  return optax.lars(schedule, weight_decay=opt.weight_decay,
                    weight_decay_mask=_decay_mask,
                    trust_coefficient=opt.trust_coefficient,
                    trust_ratio_mask=_decay_mask, momentum=opt.momentum)


def _sgd(schedule, opt):
  return optax.chain(optax.add_decayed_weights(opt.weight_decay, _decay_mask),
                     optax.sgd(schedule, momentum=opt.momentum))


def _adamw(schedule, opt):
  return optax.adamw(schedule, b1=opt.b1, b2=opt.b2,
                     weight_decay=opt.weight_decay, mask=_decay_mask)


OPTIMIZERS = {'lars': _lars, 'sgd': _sgd, 'adamw': _adamw}


def check_name(config: ml_collections.ConfigDict):
  """An unknown optimizer or decay fails naming the allowed values."""
  for key, known in (('name', OPTIMIZERS), ('decay', DECAYS)):
    if config.optimizer[key] not in known:
      raise InputError(f'config.optimizer.{key}={config.optimizer[key]!r} '
                       f'is not known; allowed values: {sorted(known)}')


def create_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int,
                     total_steps: int
                     ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns the optimizer named by `config.optimizer.name` (checked by
  `validate.check`) and its schedule over a run of `total_steps`."""
  schedule = learning_rate_schedule(config, steps_per_epoch, total_steps)
  return OPTIMIZERS[config.optimizer.name](schedule, config.optimizer), schedule
