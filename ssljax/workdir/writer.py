"""The TensorBoard writer of a run (DIR) and of `ssljax.evaluate` (DIR/eval).

tensorboardX writes the events (it needs only protobuf), where TensorFlow is
installed or not: clu's writers import TensorFlow, several seconds of every
start-up, and an accelerator's image may not have it. TensorBoard and
`ssljax.workdir.events` read these events (scalars as simple values) and
the tensor summaries that clu's writer wrote in runs made before.
tensorboardX rewrites characters a tag may not hold: `knn[k=20]/accuracy`
is written as `knn_k_20_/accuracy`.
"""
import functools
import importlib.util
import os
import uuid

from absl import logging
import numpy as np


def create(logdir: str, just_logging: bool = False) -> 'EventWriter':
  """The writer of `logdir`. `just_logging`: values to the log only (the
  processes other than 0 of a multi-host run)."""
  return EventWriter(logdir, just_logging)


@functools.cache
def _has_pillow() -> bool:
  if importlib.util.find_spec('PIL') is None:
    print('Note: Pillow is not installed; the TensorBoard events are written '
          'without their images.', flush=True)
    return False
  return True


class EventWriter:
  """Scalars, images, histograms, texts and hyperparameters, as TensorBoard
  reads them, each value also in the log."""

  def __init__(self, logdir: str, just_logging: bool = False):
    self._events = None
    if not just_logging:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      # tensorboardX names its file by the second and the host, and
      # truncates one of that name: two writers of one folder in one second
      # (`ssljax.evaluate` run twice at once) would lose the first's events.
      self._events = tensorboardX.SummaryWriter(
          logdir, flush_secs=30,
          filename_suffix=f'.{os.getpid()}.{uuid.uuid4().hex[:8]}')

  def write_scalars(self, step: int, scalars: dict):
    logging.info('[%d] %s', step, ', '.join(
        f'{k}={float(v):.6g}' for k, v in scalars.items()))
    if self._events is not None:
      for key, value in scalars.items():
        self._events.add_scalar(key, float(value), step)

  def write_images(self, step: int, images: dict):
    """{tag: [N, H, W, C] images, floats in [0, 1] or uint8}; left out
    where Pillow, which tensorboardX encodes them with, is not installed."""
    if self._events is not None and _has_pillow():
      for key, value in images.items():
        value = np.asarray(value)
        if value.dtype.kind == 'f':  # tensorboardX scales without clipping.
          value = np.clip(value, 0.0, 1.0)
        self._events.add_images(key, value, step, dataformats='NHWC')

  def write_histograms(self, step: int, arrays: dict):
    if self._events is not None:
      for key, value in arrays.items():
        self._events.add_histogram(key, np.asarray(value), step)

  def write_texts(self, step: int, texts: dict):
    for key, value in texts.items():
      logging.info('[%d] %s: %s', step, key, value)
      if self._events is not None:
        self._events.add_text(key, value, step)

  def write_hparams(self, hparams: dict):
    """As TensorBoard's HParams tab reads them, in this run's own events
    (tensorboardX's add_hparams would start a run of its own)."""
    logging.info('hparams: %s', hparams)
    if self._events is not None:
      from tensorboardX import summary  # pylint: disable=g-import-not-at-top
      for part in summary.hparams(hparams, {}):
        self._events.file_writer.add_summary(part)

  def flush(self):
    if self._events is not None:
      self._events.flush()

  def close(self):
    if self._events is not None:
      self._events.close()
