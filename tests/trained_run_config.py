"""conftest's trained_run_config as a config file, for ssljax.main."""
import conftest


def get_config():
  return conftest.trained_run_config()
