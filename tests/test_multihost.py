"""Two processes with 2 CPU devices each train as one process with 4 does.

Each run is `python -m ssljax.main`'s own path (`hosts.initialize`, then
`train.train_and_evaluate`) in fresh processes on localhost, their
collectives through gloo, on conftest's mock arrays: a checkpoint one
process wrote is resumed by two, which train on to the same state as the
one process did; their own checkpoint is read back whole.
"""
import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import conftest

from ssljax import hosts
from ssljax.errors import InputError
from ssljax.workdir import checkpoints

WORKER = '''
import json, sys
from ssljax import hosts
address, count, rank, workdir, data_name = sys.argv[1:]
if address != '-':
  hosts.initialize(address, int(count), int(rank))
from configs import vicreg_tico
from ssljax import train
from tests import conftest
config = conftest._shrink(vicreg_tico.get_config('smoke'))
config.data.name = data_name
config.model.projector_widths = (32, 32, 32)
# 16 base channels at 16x16: the 4-channel test net is so ill-conditioned
# that float32 summation order alone moves it by 1e-3 in a few steps.
config.model.width = 0.25
config.augment.image_size = 16
# SGD, not the preset's LARS: with LARS, this net took float32 summation
# order (gloo's against XLA's) from byte-identical states on every device
# to 1e-3 of a leaf after one step and 20% after two, on one Intel Xeon
# host (measured); with SGD the same steps agree to 1.2e-5 there.
config.optimizer.name = 'sgd'
for name in ('linear_probe', 'knn', 'diagnostics'):  # The online probe's
  del config.evals[name]  # evaluation reads the features all the same.
config.collapse.num_images = 0  # Its programs: compiled in every process.
config.model.online_probe = True  # The labels are split over hosts too.
config.train.num_epochs = 1.0  # 4 steps, checkpointed at 2 and 4.
config.train.keep_checkpoints = 5
results = train.train_and_evaluate(config, workdir)
if hosts.is_main():
  print('RESULTS', json.dumps(results['last_logged_train_metrics']))
'''


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _train(workdir: str, processes: int, data_name: str):
  """Trains the tiny run on `data_name` in `workdir` on `processes`
  processes of 4 //
  processes devices each, at the tests' XLA flags with the users' fusion
  emitters (conftest.xla_flags_of_users); returns
  process 0's last logged metrics."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=(
      f"{conftest.xla_flags_of_users(os.environ.get('XLA_FLAGS', ''))} "
      f'--xla_force_host_platform_device_count={4 // processes}'))
  address = f'localhost:{_free_port()}' if processes > 1 else '-'
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  launched = [subprocess.Popen(
      [sys.executable, '-c', WORKER, address, str(processes), str(rank),
       workdir, data_name], env=env, cwd=root, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for rank in range(processes)]
  outputs = [p.communicate(timeout=400)[0] for p in launched]
  for p, output in zip(launched, outputs):
    assert p.returncode == 0, output[-4000:]
  line = next(l for l in outputs[0].splitlines() if l.startswith('RESULTS'))
  return json.loads(line[len('RESULTS'):])


def _state(workdir: str, step: int) -> dict:
  """The train state of checkpoint `step` as NumPy arrays."""
  with checkpoints.manager(os.path.join(workdir, 'checkpoints'), 5) as m:
    saved = m.item_metadata(step)[checkpoints.STATE].tree
    host = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), saved)
    restored = m.restore(step, args=ocp.args.Composite(
        **{checkpoints.STATE: ocp.args.StandardRestore(host)}))
  return restored[checkpoints.STATE]


def _assert_close(a, b, what):
  """Leaf by leaf within 1e-3 of the leaf's largest value (1e-2 for the
  optimizer's momenta), named on failure. Float32 summation order (gloo's
  ring all-reduce against XLA's in-process sum) moves them: the parameters
  by up to 1.4e-5 of that in 4 steps on an Intel Xeon, and on an AMD EPYC
  (AVX2) a BatchNorm bias by 2.7e-4 and its momentum, a sum over the batch
  that cancels to a small part of its terms, by 2e-3 (measured). A wrong
  batch or a per-process BatchNorm moves them by percents."""
  named_a = jax.tree_util.tree_flatten_with_path(a)[0]
  leaves_b = jax.tree.leaves(b)
  assert len(named_a) == len(leaves_b) > 0
  for (path, x), y in zip(named_a, leaves_b):
    name = jax.tree_util.keystr(path)
    tolerance = 1e-2 if name.startswith("['opt_state']") else 1e-3
    np.testing.assert_allclose(x, y, rtol=0,
                               atol=tolerance * np.abs(x).max(),
                               err_msg=f'{what}: {name}')


@pytest.mark.slow
def test_two_processes_resume_and_train_as_one(tmp_path, mock_arrays):
  one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
  one_metrics = _train(one, processes=1, data_name=mock_arrays)
  # The checkpoint one process wrote at step 2, resumed by two processes
  # (orbax's restore on several hosts), which train steps 3 and 4.
  shutil.copytree(one, two, ignore=shutil.ignore_patterns(
      '4', '4.json', 'results.json', 'run.lock'))
  two_metrics = _train(two, processes=2, data_name=mock_arrays)
  assert one_metrics.keys() == two_metrics.keys()
  # gloo's summation order against XLA's moved grad_norm by 9e-5 of itself
  # at XLA's -O0 on an Intel Xeon, and by 1.1e-5 at -O2 on an AMD EPYC
  # (measured); a wrong batch or a per-process BatchNorm moves it by
  # percents.
  for key in ('loss', 'online_probe_cross_entropy', 'invariance',
              'grad_norm'):
    np.testing.assert_allclose(one_metrics[key], two_metrics[key],
                               rtol=2e-4, err_msg=key)
  final = _state(one, 4)
  _assert_close(final, _state(two, 4), 'two processes vs one at step 4')
  # The steps moved the parameters, so equality is not trivial.
  moved = [np.abs(a - b).max() for a, b in zip(
      jax.tree.leaves(_state(one, 2)['params']),
      jax.tree.leaves(final['params']))]
  assert max(moved) > 1e-3
  # Process 0 wrote the results and the evaluation of step 4.
  with open(os.path.join(two, 'results.json')) as f:
    results = json.load(f)
  assert results['history'][-1]['from_step'] == 2, results['history']
  assert 0 <= results['eval_summary']['online_probe_accuracy'] <= 1
  assert os.path.exists(os.path.join(two, 'eval', '4.json'))


def test_a_process_count_without_the_coordinator_is_refused():
  with pytest.raises(InputError, match='--coordinator_address=HOST:PORT'):
    hosts.initialize(None, num_processes=2, process_id=0)
