"""The commands re-execute themselves with glibc's huge-page tunable, and
that makes a fresh large buffer fault in 2 MiB pages instead of 4 KiB ones."""
import os
import subprocess
import sys

import pytest

from ssljax import hugepages

# Re-executes itself (as the commands do), then fills a fresh 64 MiB
# buffer from glibc's malloc (as XLA:CPU's buffers are; NumPy asks for huge
# pages itself) and prints the tunables and the page faults the fill took.
SCRIPT = '''
import ctypes, os, resource
from ssljax import hugepages
hugepages.reexec()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
ctypes.memset(libc.malloc(2**26), 1, 2**26)
print(os.environ.get('GLIBC_TUNABLES'),
      resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def _run(tunables):
  env = {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'}
  if tunables is not None:
    env['GLIBC_TUNABLES'] = tunables
  out = subprocess.run([sys.executable, '-c', SCRIPT], env=env, check=True,
                       capture_output=True, text=True).stdout.split()
  return out[0], int(out[1])


@pytest.mark.skipif(not hugepages._supported(),  # pylint: disable=protected-access
                    reason='needs glibc >= 2.35 and transparent huge pages')
def test_reexec_sets_the_tunable_and_the_faults_drop():
  tunables, faults = _run(None)
  assert tunables == 'glibc.malloc.hugetlb=1'
  # 64 MiB: 16,384 faults of 4 KiB pages, 32 of 2 MiB ones (the kernel may
  # fall back to small pages for a few).
  assert faults < 2000, faults
  # The user's own setting is kept, and with it the small pages.
  tunables, faults = _run('glibc.malloc.hugetlb=0')
  assert tunables == 'glibc.malloc.hugetlb=0'
  assert faults > 10000, faults
  # Other tunables the user set are kept beside ours.
  assert _run('glibc.malloc.tcache_count=8')[0] == (
      'glibc.malloc.tcache_count=8:glibc.malloc.hugetlb=1')
