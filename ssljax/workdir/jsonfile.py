"""The JSON files of a workdir (history, results, evaluations), written
whole or not at all."""
import contextlib
import json
import os


def write(path: str, value, indent: int = 2):
  """Writes `value` as JSON to `path` atomically: a reader sees the old file
  or the new one, never half of one. A write that fails (a full disk)
  leaves no temporary file behind and names `path` in its OSError."""
  temporary = f'{path}.tmp'
  try:
    with open(temporary, 'w') as f:
      json.dump(value, f, indent=indent)
    os.replace(temporary, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(temporary)
    if isinstance(e, OSError) and e.filename is None:
      raise OSError(e.errno, e.strerror, path) from None
    raise
