"""TensorBoard events without TensorFlow (`ssljax.workdir.writer`): what a
run writes is read back as TensorFlow's summaries are, and a whole run on
unpacked arrays loads neither TensorFlow nor TFDS."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import plugin_event_accumulator

from ssljax import data
from ssljax.workdir import events
from ssljax.workdir import writer as writer_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


# ssljax.main, as on an image without TensorFlow or TFDS: both fail to
# import.
_MAIN_WITHOUT_TF = """
import runpy, sys
sys.modules['tensorflow'] = sys.modules['tensorflow_datasets'] = None
sys.argv[0] = 'ssljax.main'
try:
  runpy.run_module('ssljax.main', run_name='__main__', alter_sys=True)
finally:
  print('loaded:', [m for m in sys.modules if m.startswith('tensorflow')
                    and sys.modules[m] is not None], file=sys.stderr)
"""


@pytest.mark.slow
def test_a_run_on_unpacked_arrays_trains_without_tensorflow(tmp_path):
  rng = np.random.default_rng(0)
  for split, n in (('train', 64), ('test', 32)):
    data.write_array_cache(str(tmp_path / 'arrays' / split),
                           rng.integers(0, 256, (n, 32, 32, 3), np.uint8),
                           rng.integers(0, 10, n).astype(np.int32))
  workdir = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, '-c', _MAIN_WITHOUT_TF,
       f'--config={ROOT}/tests/trained_run_config.py',
       f'--config.data.name=arrays:{tmp_path / "arrays"}',
       f'--workdir={workdir}'],
      cwd=ROOT, capture_output=True, text=True, check=False,
      env={**os.environ, 'PYTHONPATH': os.pathsep.join(
          [ROOT, os.path.join(ROOT, 'tests'),
           os.environ.get('PYTHONPATH', '')])})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stderr.rstrip().endswith('loaded: []'), proc.stderr[-3000:]
  with open(workdir / 'results.json') as f:
    results = json.load(f)
  assert results['steps'] == 6
  found = events.scalar_events(str(workdir))
  assert [s for _, s, _ in found['train/loss']] == [2, 4, 6]
  assert {s for _, s, _ in found['linear_probe/test_accuracy']} >= {2, 4, 6}
