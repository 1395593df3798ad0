"""What a result was made with, recorded in results.json so that a number
can be traced and rerun: the package versions, ssljax's numerics version,
the devices, and the git revision of ssljax (with whether it had
uncommitted changes)."""
import importlib.metadata
import os
import platform
import subprocess

import jax

import ssljax

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint',
            'ml-collections', 'clu', 'dm-pix', 'tensorflow-datasets',
            'tensorflow', 'tensorflow-cpu', 'numpy', 'scikit-learn',
            'matplotlib')


def git_revision(directory: str) -> dict | None:
  """{'commit', 'dirty'} of the git checkout holding `directory`, or None
  when it is not one (an installed wheel) or git is missing."""
  def git(*args):
    return subprocess.run(['git', '-C', directory, *args], capture_output=True,
                          text=True, check=True, timeout=10).stdout.strip()
  try:
    return {'commit': git('rev-parse', 'HEAD'),
            'dirty': bool(git('status', '--porcelain', '--untracked-files=no'))}
  except (OSError, subprocess.SubprocessError):
    return None


def record() -> dict:
  """The versions, devices and revision this process runs with."""
  versions = {}
  for package in PACKAGES:
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      pass  # Not installed here (tensorflow-cpu on macOS, say).
  devices = jax.devices()
  return {'python': platform.python_version(), 'packages': versions,
          'numerics_version': ssljax.NUMERICS_VERSION,
          'backend': jax.default_backend(),
          'device_kind': devices[0].device_kind,
          'device_count': len(devices), 'process_count': jax.process_count(),
          'host': platform.node(),
          'git': git_revision(os.path.dirname(os.path.abspath(__file__)))}
