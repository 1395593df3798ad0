"""The timer the experiment scripts share: median wall time of a jitted call,
blocking on its result (JAX dispatches asynchronously)."""
import time

import jax
import numpy as np


def median_ms(fn, *args, repeats=7):
  """Median ms of `fn(*args)` over `repeats` calls, after one warm-up call
  (which also compiles)."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))
