"""A workdir's TensorBoard scalars, read back for reports and plots: the
training run's own (DIR) and those of `ssljax.evaluate` (DIR/eval), as
tensorboardX writes them (simple values: `ssljax.workdir.writer`) or as
clu's writer wrote them in runs made before (tensors).

TensorBoard's readers read files through TensorFlow wherever it is
installed, importing it (seconds, and most of a report's start-up), unless
the module `tensorboard.compat.notf` exists: TensorBoard's own switch to the
pure-Python reader it ships (`tensorboard.compat.tf`), which reads the same
events. Importing this module sets it, for TensorBoard's readers in this
process.
"""
import os
import sys
import types

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

sys.modules.setdefault('tensorboard.compat.notf',
                       types.ModuleType('tensorboard.compat.notf'))


def scalar_events(workdir: str) -> dict:
  """{tag: [(wall_time, step, value)]} of every scalar (pictures and
  texts left out) written under `workdir` and `workdir`/eval."""
  found = {}
  for directory in (workdir, os.path.join(workdir, 'eval')):
    if not os.path.isdir(directory):
      continue
    events = event_accumulator.EventAccumulator(
        directory, size_guidance={event_accumulator.TENSORS: 0,
                                  event_accumulator.SCALARS: 0})
    events.Reload()
    for tag in events.Tags()['tensors']:
      for event in events.Tensors(tag):
        value = tensor_util.make_ndarray(event.tensor_proto)
        if value.ndim == 0 and value.dtype.kind == 'f':
          found.setdefault(tag, []).append(
              (event.wall_time, event.step, float(value)))
    for tag in events.Tags()['scalars']:
      found.setdefault(tag, []).extend(
          (e.wall_time, e.step, float(e.value)) for e in events.Scalars(tag))
  # By step, then time: one tag may be written both ways (a run begun with
  # clu's writer and resumed with tensorboardX).
  return {tag: sorted(values, key=lambda v: (v[1], v[0]))
          for tag, values in found.items()}
