"""The seconds JAX has spent compiling in this process, read as a clock.

Lowering and XLA's compile of each program, as JAX reports them
(`jax.monitoring`; the compile's report covers the persistent cache's
retrieval where the program is found there); not tracing, whose reports
nest (a jitted function traced inside another is reported within the
other's time), so that summing them would count it twice. An evaluation's
first run compiles its programs and every later one reuses them, so the
first one's time overstates the others' by its compiling (a budget's
plan, `ssljax.budget`, times the first and plans the others).
"""
from jax import monitoring

EVENTS = ('/jax/core/compile/jaxpr_to_mlir_module_duration',
          '/jax/core/compile/backend_compile_duration')
_total = [0.0]


def _listen(event: str, duration: float, **_):
  if event in EVENTS:
    _total[0] += duration


monitoring.register_event_duration_secs_listener(_listen)


def seconds() -> float:
  """Seconds spent compiling since this module was imported."""
  return _total[0]
