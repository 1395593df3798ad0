"""experiments/gpu/run.sh, dry-run on CPU as on an accelerator's image
without TensorFlow, TFDS, matplotlib, Pillow, scikit-learn or
TensorBoard: each fails to import in every process the script starts (as
in a fresh virtual environment with only JAX, Flax, Optax and Orbax, where
the script ran too: the closing note of the GPU issue)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ssljax import data
from ssljax import pack
from ssljax.workdir import events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABSENT = ('tensorflow', 'tensorflow_datasets', 'clu', 'matplotlib', 'PIL',
          'sklearn', 'tensorboard')
# Tiny: 64 train images in batches of 16, a 1/16-wide encoder.
TINY = ('model.width=0.0625', 'model.projector_widths=(32,32,32)',
        'train.batch_size=16', 'eval_batch_size=16',
        'evals.linear_probe.num_steps=30', 'collapse.num_images=16',
        'train.log_every_steps=4', 'optimizer.warmup_epochs=1.0')


@pytest.mark.slow
def test_the_gpu_command_runs_without_tensorflow(tmp_path):
  rng = np.random.default_rng(0)
  folders = {}
  for split, n in (('train', 64), ('test', 32)):
    folders[split] = str(tmp_path / 'cache' / split)
    data.write_array_cache(folders[split],
                           rng.integers(0, 256, (n, 32, 32, 3), np.uint8),
                           rng.integers(0, 10, n).astype(np.int32))
  pack.pack(folders, {'name': 'tiny', 'class_names': list('abcdefghij')},
            str(tmp_path / 'parts'), 20000)
  image = tmp_path / 'image'  # What the accelerator's image lacks.
  image.mkdir()
  (image / 'sitecustomize.py').write_text(
      'import sys\n' + ''.join(f'sys.modules[{m!r}] = None\n' for m in ABSENT))
  # The script's `python` is this one, without those.
  env = {**os.environ, 'PYTHONPATH': str(image), 'PATH': os.pathsep.join(
      [os.path.dirname(sys.executable), os.environ['PATH']])}
  assert subprocess.run(['python', '-c', 'import tensorflow'], env=env,
                        capture_output=True, check=False).returncode != 0
  proc = subprocess.run(
      ['bash', 'experiments/gpu/run.sh', str(tmp_path / 'parts'), '0.1',
       str(tmp_path / 'out'), *(f'--config.{s}' for s in TINY)],
      cwd=ROOT, env=env, capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "missing before the wheels: ['matplotlib']" in proc.stdout
  with open(tmp_path / 'out' / 'summary.json') as f:
    found = json.load(f)
  assert found['devices'] == ['cpu:0'] and found['budget']['steps'] > 0
  assert 0 <= found['final']['linear_probe_accuracy'] <= 1
  assert [p['step'] for p in found['curve']] == sorted(
      {p['step'] for p in found['curve']})
  assert len([p for p in found['curve'] if 'knn_accuracy' in p]) >= 2
  minutes = [p['minutes'] for p in found['curve']]
  assert 0 < minutes[0] and minutes == sorted(minutes)
  assert max(minutes) <= found['total_minutes']  # Results are written last.
  assert 'without their pictures' in proc.stdout  # No matplotlib,
  assert 'without their images' in proc.stdout  # no Pillow.
  assert not (tmp_path / 'out' / 'summary.png').exists()
  # A checkpoint evaluated there too (its t-SNE map needs scikit-learn).
  again = subprocess.run(
      ['python', '-m', 'ssljax.evaluate', f'--workdir={tmp_path}/out/run'],
      cwd=ROOT, env=env, capture_output=True, text=True, check=False)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'the feature map is left out' in again.stdout
  # The events, by tensorboardX, read as TensorFlow's are.
  steps = [s for _, s, _ in events.scalar_events(
      str(tmp_path / 'out' / 'run'))['train/loss']]
  assert steps and steps[-1] == found['steps']
