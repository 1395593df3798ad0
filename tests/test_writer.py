"""TensorBoard events (`ssljax.workdir.writer`): what a run writes is read
back by TensorBoard and `events` (a whole run without TensorFlow:
tests/test_gpu_dry_run.py)."""
import subprocess
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import plugin_event_accumulator

from ssljax.workdir import events
from ssljax.workdir import writer as writer_lib


def test_the_events_are_written_and_read_back(tmp_path):
  writer = writer_lib.create(str(tmp_path))
  writer.write_hparams({'train.batch_size': 64, 'method.name': 'vicreg'})
  writer.write_scalars(3, {'train/loss': 2.5, 'eval/knn': np.float32(0.25)})
  writer.write_scalars(6, {'train/loss': 1.5})
  writer.write_images(6, {'views': np.random.default_rng(0).random(
      (1, 8, 12, 3))})
  writer.write_histograms(6, {'collapse/spectrum': np.arange(10.0)})
  writer.write_texts(6, {'collapse/warning': 'rank one'})
  writer.close()
  found = events.scalar_events(str(tmp_path))
  assert [(s, v) for _, s, v in found['train/loss']] == [(3, 2.5), (6, 1.5)]
  assert [(s, v) for _, s, v in found['eval/knn']] == [(3, 0.25)]
  pictures = event_accumulator.EventAccumulator(str(tmp_path))
  pictures.Reload()
  tags = pictures.Tags()
  assert 'views' in tags['images']
  assert 'collapse/spectrum' in tags['histograms']
  # Texts and hparams, as TensorBoard's plugins read them.
  plugins = plugin_event_accumulator.EventAccumulator(str(tmp_path))
  plugins.Reload()
  assert 'collapse/warning/text_summary' in plugins.Tags()['tensors']
  assert '_hparams_/experiment' in plugins.PluginTagToContent('hparams')


def test_the_events_are_read_back_without_importing_tensorflow(tmp_path):
  """A report reads many runs' events: TensorBoard's readers would import
  TensorFlow (seconds) where it is installed, as it is here."""
  writer = writer_lib.create(str(tmp_path))
  writer.write_scalars(3, {'train/loss': 2.5})
  writer.close()
  read = subprocess.run([sys.executable, '-c', (
      'import sys\n'
      'from ssljax.workdir import events\n'
      f'print(events.scalar_events({str(tmp_path)!r})["train/loss"][0][1:])\n'
      'print("tensorflow" in sys.modules)')], capture_output=True, text=True,
      check=True)
  assert read.stdout.split('\n')[:2] == ['(3, 2.5)', 'False'], read.stderr


def test_just_logging_writes_no_events(tmp_path):
  writer = writer_lib.create(str(tmp_path), just_logging=True)
  writer.write_scalars(1, {'train/loss': 2.5})
  writer.close()
  assert not list(tmp_path.iterdir())


def test_without_matplotlib_a_picture_is_none_and_said_once(monkeypatch,
                                                            capsys):
  from ssljax import pictures  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, 'matplotlib', None)
  pictures.pyplot.cache_clear()
  try:
    assert pictures.spectrum({'a': np.ones(3)}, 'title') is None
    assert pictures.confusion_matrix(np.eye(2), ['a', 'b'], 'title') is None
  finally:
    pictures.pyplot.cache_clear()
  assert capsys.readouterr().out.count('without their pictures') == 1


def test_two_writers_of_one_folder_at_once_keep_both_their_events(tmp_path):
  """`ssljax.evaluate` run twice at once on a workdir: tensorboardX names a
  file by the second and the host, and truncates one of that name."""
  first = writer_lib.create(str(tmp_path))
  second = writer_lib.create(str(tmp_path))
  first.write_scalars(1, {'knn/accuracy': 0.5})
  second.write_scalars(2, {'knn/accuracy': 0.25})
  first.close()
  second.close()
  found = events.scalar_events(str(tmp_path))['knn/accuracy']
  assert [(s, v) for _, s, v in found] == [(1, 0.5), (2, 0.25)]


def test_the_tensor_scalars_of_runs_written_by_clu_are_read_back(tmp_path):
  """Runs before 2026-12-07 wrote scalars as TensorFlow's summaries do: a
  float32 tensor of the scalars plugin."""
  from tensorboardX.proto import summary_pb2  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import tensor_pb2  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import types_pb2  # pylint: disable=g-import-not-at-top
  writer = writer_lib.create(str(tmp_path))
  writer.write_scalars(1, {'train/loss': 2.5})
  tensor = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
      tag='train/loss', tensor=tensor_pb2.TensorProto(
          dtype=types_pb2.DT_FLOAT, float_val=[1.5]),
      metadata=summary_pb2.SummaryMetadata(
          plugin_data=summary_pb2.SummaryMetadata.PluginData(
              plugin_name='scalars')))])
  writer._events.file_writer.add_summary(tensor, 2)  # pylint: disable=protected-access
  writer.close()
  found = events.scalar_events(str(tmp_path))['train/loss']
  assert [(s, v) for _, s, v in found] == [(1, 2.5), (2, 1.5)]
