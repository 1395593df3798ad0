"""Huge pages for the buffers XLA:CPU allocates, on Linux with glibc.

XLA:CPU gives most results of a step a fresh buffer, and glibc maps each
large one anew from the kernel, which then faults it in one 4 KiB page at a
time, every step: measured on this 2-core CPU, an elementwise op over 67 MB
took 20.7 ms, of which the 16,385 page faults were most, and 5.0 ms with
2 MiB pages (544 faults); the full-width ResNet-18 VICReg step went from
3.2-3.3 s to 2.6-2.7 s (experiments/results/performance.md). glibc (2.35
and later) asks for transparent huge pages on the memory it maps when the
tunable glibc.malloc.hugetlb=1 is set, and reads tunables only when a
process starts; so the commands re-execute themselves once with it set,
before JAX loads. Setting glibc.malloc.hugetlb in GLIBC_TUNABLES yourself
(=0 to keep 4 KiB pages) leaves the choice to you.
"""
import os
import sys

TUNABLE = 'glibc.malloc.hugetlb'
_THP_SETTING = '/sys/kernel/mm/transparent_hugepage/enabled'


def _supported() -> bool:
  """glibc 2.35 or later, and the kernel grants huge pages on request."""
  try:
    libc, version = os.confstr('CS_GNU_LIBC_VERSION').split()
    with open(_THP_SETTING, encoding='ascii') as f:
      thp = f.read()
  except (ValueError, OSError, AttributeError):
    return False
  major, minor = (int(v) for v in version.split('.')[:2])
  return libc == 'glibc' and (major, minor) >= (2, 35) and '[never]' not in thp


def tunables_with(value: int) -> str:
  """GLIBC_TUNABLES with glibc.malloc.hugetlb=value added to the others
  set."""
  return ':'.join(t for t in (os.environ.get('GLIBC_TUNABLES'),
                              f'{TUNABLE}={value}') if t)


def reexec():
  """Re-executes this command with glibc.malloc.hugetlb=1, unless it is set
  already (by us or the user) or not supported here."""
  tunables = os.environ.get('GLIBC_TUNABLES', '')
  if TUNABLE in tunables or not sys.platform.startswith('linux'):
    return
  if not _supported():
    return
  env = dict(os.environ, GLIBC_TUNABLES=tunables_with(1))
  sys.stdout.flush()
  os.execve(sys.executable, sys.orig_argv, env)
