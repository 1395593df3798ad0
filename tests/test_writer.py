"""TensorBoard events without TensorFlow (`ssljax.workdir.writer`): what a
run writes is read back as TensorFlow's summaries are (a whole run without
TensorFlow: tests/test_gpu_dry_run.py)."""
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import plugin_event_accumulator

from ssljax.workdir import events
from ssljax.workdir import writer as writer_lib


def test_without_tensorflow_the_events_are_written_and_read_back(
    tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'clu', None)  # Its writers need TF.
  writer = writer_lib.create(str(tmp_path))
  assert isinstance(writer, writer_lib.EventWriter)
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


def test_with_tensorflow_the_writer_is_clus():
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  assert isinstance(writer_lib.create('/nonexistent', just_logging=True),
                    metric_writers.MetricWriter)


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
