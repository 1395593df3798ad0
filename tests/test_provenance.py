"""results.json's provenance names the versions, devices and revision."""
import os
import subprocess

import jax

from ssljax.workdir import provenance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_record_names_versions_devices_and_the_git_revision(tmp_path):
  record = provenance.record()
  assert record['packages']['jax'] == jax.__version__
  assert {'flax', 'optax', 'numpy'} <= set(record['packages'])
  assert record['device_count'] == jax.device_count() >= 1
  assert record['backend'] == jax.default_backend()
  head = subprocess.run(['git', '-C', ROOT, 'rev-parse', 'HEAD'],
                        capture_output=True, text=True, check=False)
  if head.returncode == 0:  # Run from a checkout, as in CI.
    assert record['git']['commit'] == head.stdout.strip()
  assert provenance.git_revision(str(tmp_path)) is None  # Not a checkout.
