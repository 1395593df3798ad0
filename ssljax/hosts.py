"""Several processes, one per host, as JAX's multi-controller model runs them.

Every process runs the same program on its own devices; the mesh spans all
of them (`data_mesh`), and a jitted step over it is one global
computation. What differs between processes is only which rows of a global
array each one holds, and who writes: process 0 writes the logs, results and
history; orbax writes checkpoints from every process as it is designed to.
"""
import glob
import os

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

from ssljax.errors import InputError


def _cluster_detected() -> bool:
  """A launcher JAX's `jax.distributed.initialize()` finds by itself: SLURM
  with several tasks, Open MPI's mpirun, or a Cloud TPU VM (whose metadata
  names the other hosts of a pod slice)."""
  slurm = int(os.environ.get('SLURM_NTASKS', '1')) > 1
  mpi = 'OMPI_MCA_orte_hnp_uri' in os.environ
  tpu_vm = bool(glob.glob('/dev/accel*') or glob.glob('/dev/vfio/[0-9]*'))
  return slurm or mpi or tpu_vm


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None):
  """Joins the processes of a multi-host run (`jax.distributed.initialize`)
  before JAX starts: with the coordinator, count and rank given, or as JAX
  detects them on TPU VMs, SLURM and Open MPI. Elsewhere, and on a single
  TPU VM that is no pod slice, the run stays one process. On CPU the
  processes' collectives go through gloo."""
  given = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in given) and coordinator_address is None:
    raise InputError('--num_processes and --process_id need '
                     '--coordinator_address=HOST:PORT (the address of process '
                     '0, the same for every process).')
  if coordinator_address is None and not _cluster_detected():
    return
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  except ValueError as e:
    if coordinator_address is not None:
      raise
    # A TPU VM without pod metadata (e.g. Colab's): one process.
    print(f'Note: training as one process ({e}).', flush=True)


def is_main() -> bool:
  """Process 0 writes what every process would write the same."""
  return jax.process_index() == 0


def data_mesh(devices=None) -> Mesh:
  """A one-axis mesh over `devices` (default: all, of every process): the
  batch and the training split are split on 'data', parameters are
  replicated. The devices are ordered by process, so that each process
  holds one block of rows of a split array."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.array(sorted(devices, key=lambda d: (d.process_index, d.id))),
              ('data',))


def replicated(mesh: Mesh) -> NamedSharding:
  """Whole on every device of the mesh (parameters, the train state)."""
  return NamedSharding(mesh, PartitionSpec())


def split_rows(mesh: Mesh) -> NamedSharding:
  """Split on the leading (batch) axis over the mesh."""
  return NamedSharding(mesh, PartitionSpec('data'))


def local_rows(sharding: jax.sharding.Sharding, num_rows: int) -> slice:
  """The rows of an array [num_rows, ...] split on its leading axis by
  `sharding` that this process's devices hold: one contiguous block, as
  `data_mesh` orders the devices by process."""
  starts, stops = zip(*[(index[0].start or 0, index[0].stop or num_rows)
                        for index in sharding.addressable_devices_indices_map(
                            (num_rows,)).values()])
  block = slice(min(starts), max(stops))
  if sum(b - a for a, b in set(zip(starts, stops))) < block.stop - block.start:
    raise ValueError('This process holds rows that are not one block; build '
                     'the mesh with hosts.data_mesh.')
  return block


def global_array(sharding: jax.sharding.Sharding, host: np.ndarray
                 ) -> jax.Array:
  """The global array of `host` (which every process holds whole) split by
  `sharding` on its leading axis: each process puts only its own rows on
  its devices."""
  return jax.make_array_from_process_local_data(
      sharding, host[local_rows(sharding, len(host))], host.shape)


def to_host(array: jax.Array) -> np.ndarray:
  """A global array as one NumPy array on every process."""
  if array.is_fully_addressable:
    return np.asarray(array)
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def any_process(flag: bool) -> bool:
  """Whether `flag` holds on any process: a stop request seen by one
  process stops all of them at the same step."""
  return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def process_0s(value: int) -> int:
  """Process 0's `value` on every process: a choice that each process
  measured for itself (a budget run's length), made once for all."""
  if jax.process_count() == 1:
    return value
  return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def barrier(name: str):
  """Waits until every process reaches `name` (after process 0 changed the
  workdir, before the others read it)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _host_memory_available() -> int | None:
  """MemAvailable of /proc/meminfo in bytes (None where there is none)."""
  try:
    with open('/proc/meminfo') as f:
      line = next(l for l in f if l.startswith('MemAvailable:'))
    return int(line.split()[1]) * 1024
  except (OSError, StopIteration, ValueError):
    return None


def check_fits(bytes_per_device: int, what: str):
  """Refuses, naming the memory it needs, an array that would not fit on
  this process's devices: their free memory on an accelerator, the host's
  available memory for CPU devices (which share it)."""
  device = jax.local_devices()[0]
  stats = device.memory_stats() or {}
  if 'bytes_limit' in stats:
    needed = bytes_per_device
    free = stats['bytes_limit'] - stats.get('bytes_in_use', 0)
    where = f'each {device.platform.upper()} device'
  else:
    needed = bytes_per_device * jax.local_device_count()
    free, where = _host_memory_available(), "this host's memory"
  if free is not None and needed > free:
    raise InputError(
        f'{what} needs {needed / 2**30:.2f} GiB on {where}, where '
        f'{free / 2**30:.2f} GiB is free. Use fewer or smaller images, or '
        'more devices (the split is divided over them).')
