"""The commands re-execute themselves once with glibc's huge-page tunable
set, keeping whatever the user set: what `hugepages.reexec` decides, not
what the kernel then does with it (experiments/results/performance.md
measured that)."""
import os
import subprocess
import sys

import pytest

from ssljax import hugepages

# Re-executes itself, as the commands do, and prints the tunables it runs
# with and how many times it started.
SCRIPT = '''
import os, sys
print('start', flush=True)
from ssljax import hugepages
hugepages.reexec()
print(os.environ.get('GLIBC_TUNABLES'))
'''


def _run(tunables):
  env = {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'}
  if tunables is not None:
    env['GLIBC_TUNABLES'] = tunables
  out = subprocess.run([sys.executable, '-c', SCRIPT], env=env, check=True,
                       capture_output=True, text=True, timeout=60).stdout.split()
  return out[-1], out.count('start')


@pytest.mark.skipif(not hugepages._supported(),  # pylint: disable=protected-access
                    reason='needs glibc >= 2.35 and transparent huge pages')
def test_reexec_sets_the_tunable_once_and_keeps_the_users():
  assert _run(None) == ('glibc.malloc.hugetlb=1', 2)  # Re-executed once.
  # The user's own choice is kept, and nothing is re-executed.
  assert _run('glibc.malloc.hugetlb=0') == ('glibc.malloc.hugetlb=0', 1)
  # Other tunables the user set are kept beside ours.
  assert _run('glibc.malloc.tcache_count=8') == (
      'glibc.malloc.tcache_count=8:glibc.malloc.hugetlb=1', 2)


def test_where_huge_pages_are_not_granted_nothing_is_re_executed(
    monkeypatch):
  monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
  monkeypatch.setattr(hugepages, '_supported', lambda: False)
  monkeypatch.setattr(os, 'execve', lambda *a: pytest.fail('re-executed'))
  hugepages.reexec()
  assert 'GLIBC_TUNABLES' not in os.environ


def test_the_tunable_is_added_beside_the_users_others(monkeypatch):
  """As the tests set it for their commands (conftest.py): 4 KiB pages."""
  monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.tcache_count=8')
  assert hugepages.tunables_with(0) == (
      'glibc.malloc.tcache_count=8:glibc.malloc.hugetlb=0')
  monkeypatch.delenv('GLIBC_TUNABLES')
  assert hugepages.tunables_with(0) == 'glibc.malloc.hugetlb=0'
