"""The statistics of a comparison across seeds: a mean with its Student-t
95% interval, and paired differences between arms with their t-test,
Holm-adjusted across the pairs of a table.

Seeds pair runs: at the same seed two arms start from the same encoder
initialisation and see the images in the same order, so the difference
of their accuracies at each seed removes what the seed alone explains.
With 3 seeds a t-interval is wide (t = 4.30 at 2 degrees of freedom);
that is the honest width of what 3 runs can show.
"""
import dataclasses
import math

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Estimate:
  """n values' mean, sample standard deviation, and the `LEVEL` interval
  of the mean, mean +- t(n-1) * std / sqrt(n); nan where n is too small."""
  n: int
  mean: float
  std: float
  low: float
  high: float


def estimate(values) -> Estimate:
  values = np.asarray(values, np.float64)
  n = len(values)
  if n == 0:
    return Estimate(0, math.nan, math.nan, math.nan, math.nan)
  mean = float(values.mean())
  if n == 1:
    return Estimate(1, mean, math.nan, math.nan, math.nan)
  std = float(values.std(ddof=1))
  half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * std / math.sqrt(n)
  return Estimate(n, mean, std, float(mean - half), float(mean + half))


def with_test_sampling(values, num_test: int) -> Estimate:
  """The `Estimate` of accuracies measured on one test set of `num_test`
  images, its interval widened by that test set's own sampling error: for
  comparing with a number measured elsewhere (another test set, another
  paper), where the interval of `estimate`, which holds the test set
  fixed, is too narrow. The two half-widths add in quadrature: the seeds'
  t(n-1) * s / sqrt(n) and the normal z * sqrt(p(1-p) / num_test) of the
  binomial error that the seeds share (one test set); slightly
  conservative, and never narrower than the seeds' own interval. A single
  run gets the binomial part alone."""
  seeds = estimate(values)
  if seeds.n == 0:
    return seeds
  seeds_half = 0.0 if seeds.n == 1 else seeds.mean - seeds.low
  sampling_half = stats.norm.ppf(0.5 + LEVEL / 2) * math.sqrt(
      seeds.mean * (1 - seeds.mean) / num_test)
  half = math.hypot(seeds_half, sampling_half)
  return dataclasses.replace(seeds, low=seeds.mean - half,
                             high=seeds.mean + half)


@dataclasses.dataclass(frozen=True)
class Difference:
  """A - B over the seeds both have: the `Estimate` of the per-seed
  differences and the two-sided p-value of the paired t-test (mean
  difference 0); nan below 2 seeds."""
  estimate: Estimate
  p: float


def paired_difference(a: dict, b: dict) -> Difference:
  """{seed: value} of two arms -> their paired `Difference`."""
  seeds = sorted(a.keys() & b.keys())
  differences = [a[s] - b[s] for s in seeds]
  found = estimate(differences)
  if found.n < 2:
    return Difference(found, math.nan)
  if found.std == 0:  # Every seed gave the same difference.
    return Difference(found, 1.0 if found.mean == 0 else 0.0)
  t = found.mean / (found.std / math.sqrt(found.n))
  return Difference(found, float(2 * stats.t.sf(abs(t), found.n - 1)))


def holm(p_values: list[float]) -> list[float]:
  """Holm's step-down adjustment (Holm 1979) of m p-values, so that
  'adjusted p < 0.05' holds the chance of any false finding in the table
  to 5%: the k-th smallest is multiplied by m - k + 1, kept monotone and
  capped at 1. nan values are left out and stay nan."""
  order = sorted((i for i, p in enumerate(p_values) if not math.isnan(p)),
                 key=lambda i: p_values[i])
  adjusted = [math.nan] * len(p_values)
  running = 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (len(order) - rank) * p_values[i]))
    adjusted[i] = running
  return adjusted
