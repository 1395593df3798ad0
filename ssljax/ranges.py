"""The ranges numeric settings may take, as the shared config
(`validate.RULES`), each method and each evaluator (`RANGES` beside their
`default_config`) declare them; `validate.check` applies them."""
import math


def between(low=None, high=None, low_open=False, high_open=False):
  """(check, words) of a closed or open interval, applied to a number or to
  every number of a tuple."""
  def inside(v):
    return ((low is None or (v > low if low_open else v >= low)) and
            (high is None or (v < high if high_open else v <= high)))
  words = ' and '.join(w for w in (
      None if low is None else f"{'>' if low_open else '>='} {low}",
      None if high is None else f"{'<' if high_open else '<='} {high}") if w)
  return inside, words


POSITIVE = between(0, low_open=True)
AT_LEAST_0 = between(0)
AT_LEAST_1 = between(1)
PROBABILITY = between(0, 1)
FRACTION = between(0, 1, low_open=True)  # (0, 1]
DECAY = between(0, 1, high_open=True)  # [0, 1)
# At least 0, or NaN: a length or period the run's budget chooses
# (`ssljax.budget`).
OR_CHOSEN = (lambda v: math.isnan(v) or AT_LEAST_0[0](v),
             '>= 0, or NaN (chosen by train.budget_minutes)')
