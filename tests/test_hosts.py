"""A training split too large for the devices is refused, naming the memory
it needs, before it is put there."""
import jax
import pytest

from ssljax import hosts
from ssljax.errors import InputError


def test_a_split_too_large_for_the_devices_is_refused_naming_the_memory(
    monkeypatch):
  monkeypatch.setattr(hosts, '_host_memory_available', lambda: 2**30)
  count = jax.local_device_count()
  hosts.check_fits(2**29 // count, 'The split')  # Half of what is free.
  with pytest.raises(InputError, match=r"The split needs 2.00 GiB on this "
                     r"host's memory, where 1.00 GiB is free\. Use fewer"):
    hosts.check_fits(2**31 // count, 'The split')
  monkeypatch.undo()
  assert hosts._host_memory_available() > 2**20  # pylint: disable=protected-access
