"""What a result was made with, recorded in results.json so that a number
can be traced and rerun: the package versions, ssljax's numerics version,
the devices and the machine's CPU, and the git revision of ssljax (with
whether it had uncommitted changes)."""
import importlib.metadata
import os
import platform
import subprocess

import jax

import ssljax

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint',
            'ml-collections', 'tensorboardX', 'dm-pix', 'tensorflow-datasets',
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
          'host': platform.node(), 'machine': host(),
          'git': git_revision(os.path.dirname(os.path.abspath(__file__)))}


# The vector extensions that decide the code XLA:CPU generates (and so a
# run's last bits): /proc/cpuinfo's names.
VECTOR_EXTENSIONS = ('avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni',
                     'avx512_bf16', 'amx_tile', 'amx_bf16', 'amx_int8')


def host() -> dict:
  """What tells this machine's numbers from another's: the CPU's model name
  (machines of one name differ, e.g. AMD EPYC generations), its family and
  model numbers, the vector extensions it has of VECTOR_EXTENSIONS, and
  the cores. The accelerator, where one ran, is in results.json's
  'devices'."""
  fields = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if not line.strip():
          break  # The first processor's block.
        key, _, value = line.partition(':')
        fields[key.strip()] = value.strip()
  except OSError:
    pass  # Not Linux.
  flags_found = set(fields.get('flags', '').split())
  return {'cpu_model': fields.get('model name') or cpu_model(),
          'cpu_family': fields.get('cpu family'),
          'cpu_model_number': fields.get('model'),
          'vector_extensions': [e for e in VECTOR_EXTENSIONS
                                if e in flags_found],
          'cpus': os.cpu_count()}


# The widest vector unit of a machine (`host`), widest first: the name
# `named` gives it.
WIDEST = (('amx_tile', 'AMX'), ('avx512f', 'AVX-512'), ('avx2', 'AVX2'),
          ('avx', 'AVX'))


def named(machine: dict) -> str:
  """A machine (`host`) in words, e.g. 'AMD EPYC (family 25, model 17,
  AVX-512)': two machines of one model name (AVX2 or AVX-512 EPYCs) get
  different names, as their runs' digits differ."""
  widest = next((label for extension, label in WIDEST
                 if extension in machine['vector_extensions']), 'no AVX')
  return (f"{machine['cpu_model']} (family {machine['cpu_family']}, "
          f"model {machine['cpu_model_number']}, {widest})")


def cpu_model() -> str:
  """The CPU's model name: machines of one host name differ in it, and so
  in speed (and in the code XLA:CPU generates for them)."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass  # Not Linux.
  return platform.processor() or platform.machine()
