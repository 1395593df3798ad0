"""Golden numbers: what the code computed when `ssljax.NUMERICS_VERSION` was
last set, kept in tests/golden.json, so that a change that alters results
without bumping the version fails.

A value (any pytree of arrays) is checked two ways:
- its fingerprint, the sum and the sum of squares of each leaf in float64,
  within TOLERANCE of the one recorded for this machine's vector unit
  (`vector_unit`: AVX2 or AVX-512), under the tests' XLA flags
  (conftest.py): library builds and LLVM's -O0 against -O2 moved them by
  up to 6e-5 (one host, three steps of the tiny run); a changed formula,
  augmentation, random key or schedule moves them by far more. So does
  another vector unit: its float32 summation order differs in the last
  bits, which flip thresholds in the augmentation (solarization's) and an
  argmax on a near tie (the online probe's accuracy), so that an AVX-512
  machine's tiny run differs from an AVX2 one's from its second step by
  1-3% (and by one image of the online probe's 16). A vector unit with no
  recorded fingerprints is skipped, naming the command that records them;
- its sha256, bit for bit, where checksums were recorded for this platform
  (`platform()`: the instruction set, jaxlib and XLA's flags decide the bits).

After bumping NUMERICS_VERSION, record the values anew with
`pytest --golden=record tests/test_golden.py tests/test_method_contract.py`;
on another platform, the same command (on the commit that set the version,
or one whose numbers have not changed since) adds its checksums, and on
another vector unit its fingerprints.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import pathlib

import jax
import jaxlib
import numpy as np
import pytest

import ssljax
from ssljax.workdir import provenance

PATH = pathlib.Path(__file__).with_name('golden.json')
TOLERANCE = 1e-3
RECORD = False  # Set by conftest.py from --golden=record.


def _widest(among: tuple[str, ...]) -> str:
  """The first of `among` this machine has (`provenance.host`'s vector
  extensions, read from /proc/cpuinfo), else 'other'."""
  found = provenance.host()['vector_extensions']
  return next((e for e in among if e in found), 'other')


def platform() -> str:
  """What decides the exact bits of a computation on this machine."""
  isa = _widest(('amx_tile', 'avx512f', 'avx2'))
  return (f'{jax.default_backend()} {isa}, jaxlib {jaxlib.__version__}, '
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")


def vector_unit() -> str:
  """The widest vector unit XLA:CPU compiles float32 code for here, which
  decides a computation's numbers beyond summation noise: 'avx512f',
  'avx2' or 'other' (an Intel Xeon with AMX computed what an AMD EPYC
  with AVX-512 did, to the last digit of a `cpu10` run's probe)."""
  return _widest(('avx512f', 'avx2'))


def fingerprint(tree) -> list[list[float]]:
  """[sum, sum of squares] of each leaf, in float64: per leaf, so that a
  change in a small leaf (a BatchNorm statistic) is not lost in a large
  one (the key)."""
  return [[float(np.sum(x, dtype=np.float64)),
           float(np.sum(np.square(x, dtype=np.float64)))]
          for x in map(np.asarray, jax.tree.leaves(tree))]


def checksum(tree) -> str:
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(tree):
    leaf = np.asarray(leaf)
    digest.update(f'{leaf.dtype}{leaf.shape}'.encode())
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


@contextlib.contextmanager
def _locked():
  """The golden file, read and (when recording) written by one process at
  a time: the xdist workers record at once."""
  with open(PATH, 'a') as lock:  # Appends nothing: held for the lock.
    fcntl.flock(lock, fcntl.LOCK_EX)
    yield json.loads(PATH.read_text()) if PATH.exists() else {}


def check(name: str, tree, required: bool = True):
  """Asserts that `tree` is what `name` computed at this NUMERICS_VERSION
  (or records it, with --golden=record); a name never recorded (a method
  added since) passes unless `required`."""
  tree = jax.device_get(tree)
  here, found, exact = platform(), fingerprint(tree), checksum(tree)
  unit = vector_unit()
  with _locked() as golden:
    if RECORD:
      if golden.get('numerics_version') != ssljax.NUMERICS_VERSION:
        golden = {'numerics_version': ssljax.NUMERICS_VERSION,
                  'fingerprints': {}, 'checksums': {}}
      golden['fingerprints'].setdefault(unit, {})[name] = found
      golden['checksums'].setdefault(here, {})[name] = exact
      PATH.write_text(json.dumps(golden, indent=1, sort_keys=True) + '\n')
      return
  assert golden.get('numerics_version') == ssljax.NUMERICS_VERSION, (
      f'tests/golden.json was recorded at NUMERICS_VERSION '
      f"{golden.get('numerics_version')}, ssljax is at "
      f'{ssljax.NUMERICS_VERSION}: record it anew (golden.py says how).')
  if unit not in golden['fingerprints']:
    pytest.skip(f'tests/golden.json has no numbers for {unit} machines; on '
                'the commit that last set NUMERICS_VERSION, `pytest '
                '--golden=record tests/test_golden.py '
                'tests/test_method_contract.py` records them.')
  if name not in golden['fingerprints'][unit]:
    assert not required, f'tests/golden.json has no value of {name}'
    return
  expected = np.asarray(golden['fingerprints'][unit][name])
  found = np.asarray(found)
  assert found.shape == expected.shape, f'{name}: another number of leaves'
  tiny = np.finfo(np.float64).tiny
  off = np.maximum(
      np.abs(found[:, 0] - expected[:, 0]) / np.maximum(
          np.sqrt(expected[:, 1]), tiny),
      np.abs(found[:, 1] - expected[:, 1]) / np.maximum(expected[:, 1], tiny))
  assert off.max() <= TOLERANCE, (
      f'{name} computes other numbers than at NUMERICS_VERSION '
      f'{ssljax.NUMERICS_VERSION} (leaf {int(off.argmax())} off by '
      f'{off.max():.2g} of its scale): if that is meant, bump the version '
      '(stored comparison runs are keyed on it) and record anew.')
  recorded = golden['checksums'].get(here, {}).get(name)
  assert recorded in (None, exact), (
      f'{name} differs in its last bits from what this platform ({here}) '
      f'computed at NUMERICS_VERSION {ssljax.NUMERICS_VERSION}: a change of '
      'summation order or of a formula; if meant, bump the version and '
      'record anew.')
