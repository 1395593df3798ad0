"""The learning-rate schedules against their formulas, written out here."""
import math

import numpy as np
import pytest

from ssljax import optim
from ssljax import validate
from ssljax.errors import InputError

STEPS_PER_EPOCH, TOTAL = 10, 100


def expected(decay: str, step: int, peak: float, end: float,
             warmup: int) -> float:
  if step < warmup:
    return peak * step / warmup
  if warmup == TOTAL:
    return peak
  done = min(step - warmup, TOTAL - warmup) / (TOTAL - warmup)
  if decay == 'cosine':
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * done))
  return peak + (end - peak) * done


@pytest.mark.parametrize('decay', sorted(optim.DECAYS))
@pytest.mark.parametrize('min_lr_ratio', [0.0, 0.1])
@pytest.mark.parametrize('warmup_epochs', [0.0, 2.0, 10.0, 12.0])
def test_warmup_then_decay_to_the_end_at_the_last_step(
    tiny_config, decay, min_lr_ratio, warmup_epochs):
  config = tiny_config
  config.train.batch_size = 512
  config.optimizer.update(learning_rate=0.3, warmup_epochs=warmup_epochs,
                          min_lr_ratio=min_lr_ratio, decay=decay)
  schedule = optim.learning_rate_schedule(config, STEPS_PER_EPOCH, TOTAL)
  peak = 0.3 * 512 / 256  # The linear scaling rule.
  warmup = min(int(warmup_epochs * STEPS_PER_EPOCH), TOTAL)
  # The run takes steps 0 to TOTAL - 1; after a decay, the schedule stays
  # at its end.
  steps = [0, 5, 19, 20, 21, 40, 60, 77, 99, 100] + (
      [120] if warmup < TOTAL else [])
  np.testing.assert_allclose(
      [float(schedule(s)) for s in steps],
      [expected(decay, s, peak, peak * min_lr_ratio, warmup) for s in steps],
      rtol=1e-5, atol=1e-7)


def test_an_unknown_decay_is_refused_naming_the_known(tiny_config):
  tiny_config.optimizer.decay = 'step'
  with pytest.raises(InputError, match=r"decay='step'.*\['cosine', 'linear'\]"):
    validate.check(tiny_config)
