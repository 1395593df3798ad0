"""Self-supervised representation learning on images in JAX/Flax."""

# What a run computes, as a number: stored comparison runs are keyed on it,
# with their resolved config and the numerical packages' versions
# (`ssljax.compare.runs.run_key`), not on the code's text, so that a
# refactor, a new module or a docstring orphans no stored run. A change that
# alters any run's numbers must bump it; tests/test_golden.py fails until it
# does (and until the golden values are recorded anew).
NUMERICS_VERSION = 1
