"""experiments/colab_tpu.ipynb, executed top to bottom as Colab would run it,
on the CPU with a tiny smoke run on `tfds.testing.mock_data`: the notebook
runs training and evaluation as processes of their own, so the mock is
started in every Python process of the test's environment by a
`sitecustomize` module put on its PYTHONPATH (nothing in ssljax or the
notebook knows of it)."""
import json
import os
import signal
import sys
import time
import urllib.request

import pytest

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                        'experiments', 'colab_tpu.ipynb')
MOCK_EXAMPLES = 256  # Per split: 4 steps of the smoke preset's batch of 64.
SITECUSTOMIZE = f"""
import tensorflow_datasets as tfds
MOCK = tfds.testing.mock_data(num_examples={MOCK_EXAMPLES})  # Kept: when
MOCK.__enter__()  # collected, the mock would end.
"""
# The smoke preset shrunk to 4 steps of a 4-channel ResNet-18 and a shorter
# probe.
TINY_FLAGS = ('--config.train.num_epochs=1 --config.model.width=0.0625 '
              '--config.train.log_every_steps=2 '
              '--config.train.checkpoint_every_steps=2 '
              '--config.evals.linear_probe.num_steps=30 '
              "--config.evals.linear_probe.l2_grid='(1e-4, 1e-2)'")


def _tensorboards(logdir: str) -> list:
  """The TensorBoard servers started on `logdir` (`tensorboard.manager`'s
  records of them; `%tensorboard`'s outlive the kernel)."""
  from tensorboard import manager  # pylint: disable=g-import-not-at-top
  return [info for info in manager.get_all()
          if os.path.realpath(info.logdir) == os.path.realpath(logdir)]


def _stop(servers: list):
  for info in servers:
    try:
      os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
      pass


def _runs_served(port: int, timeout: float = 60.0) -> list:
  """The runs the TensorBoard on `port` shows, once it shows two."""
  deadline = time.time() + timeout
  while True:
    with urllib.request.urlopen(f'http://localhost:{port}/data/runs',
                                timeout=10) as response:
      runs = json.load(response)
    if len(runs) >= 2 or time.time() > deadline:
      return runs
    time.sleep(2)


def _outputs(cell, kind: str) -> list:
  """The `kind` outputs of a cell: 'stream' text or a MIME type's data."""
  if kind == 'stream':
    return [o['text'] for o in cell.outputs if o['output_type'] == 'stream']
  return [o['data'][kind] for o in cell.outputs
          if o['output_type'] in ('display_data', 'execute_result')
          and kind in o['data']]


def test_the_notebook_is_valid_and_stored_without_outputs():
  import nbformat  # pylint: disable=g-import-not-at-top
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  for cell in notebook.cells:
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None, cell.source
  # The default is the TPU preset; the tests choose theirs by environment.
  assert "os.environ.get('SSLJAX_NOTEBOOK_PRESET', 'tpu')" in (
      notebook.cells[1].source)


@pytest.mark.slow
def test_the_notebook_trains_evaluates_and_shows_the_results(tmp_path,
                                                             monkeypatch):
  import nbclient  # pylint: disable=g-import-not-at-top
  import nbformat  # pylint: disable=g-import-not-at-top

  workdir = tmp_path / 'run'
  hook = tmp_path / 'mock'
  hook.mkdir()
  (hook / 'sitecustomize.py').write_text(SITECUSTOMIZE)
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
      [str(hook)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
  # A data folder that holds a 'cifar10', so that the notebook does not ask
  # TFDS to download it (which the mock does not stop).
  (tmp_path / 'tensorflow_datasets' / 'cifar10').mkdir(parents=True)
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tensorflow_datasets'))
  monkeypatch.setenv('SSLJAX_NOTEBOOK_PRESET', 'smoke')
  monkeypatch.setenv('SSLJAX_NOTEBOOK_FLAGS', TINY_FLAGS)
  monkeypatch.setenv('SSLJAX_NOTEBOOK_EVAL_FLAGS',
                     '--evals=linear_probe,diagnostics')
  monkeypatch.setenv('SSLJAX_NOTEBOOK_WORKDIR', str(workdir))
  # The kernel is this interpreter's (its environment's python3 kernelspec),
  # and `%tensorboard` starts the `tensorboard` beside it, which is on the
  # PATH only where the environment was activated.
  monkeypatch.setenv('JUPYTER_PREFER_ENV_PATH', '1')
  monkeypatch.setenv('PATH', os.path.dirname(sys.executable) + os.pathsep +
                     os.environ.get('PATH', ''))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      notebook, kernel_name='python3', timeout=600,
      resources={'metadata': {'path': os.path.dirname(NOTEBOOK)}})
  client.reset_execution_trackers()
  try:
    with client.setup_kernel():  # client.execute(), the kernel kept to check
      for index, cell in enumerate(notebook.cells):  # the TensorBoard it runs.
        # Raises CellExecutionError at the first failing cell.
        client.execute_cell(cell, index,
                            execution_count=client.code_cells_executed + 1)
      servers = _tensorboards(str(workdir))
      assert len(servers) == 1, servers
      # It shows the run and its evaluation, and the cell shows it.
      assert {'.', 'eval'} <= set(_runs_served(servers[0].port))
      tensorboard = next(c for c in notebook.cells
                         if '%tensorboard' in c.source)
      assert any(f'port = {servers[0].port};' in html
                 for html in _outputs(tensorboard, 'text/html'))
  finally:  # Stops it where the kernel's end did not.
    _stop(_tensorboards(str(workdir)))

  code = [c for c in notebook.cells if c.cell_type == 'code']
  for cell in code:  # Every cell ran, none failed.
    assert cell.execution_count is not None, cell.source
    assert not [o for o in cell.outputs if o['output_type'] == 'error']
  text = lambda cell: ''.join(_outputs(cell, 'stream'))
  assert "preset 'smoke'" in text(code[0])
  assert 'platform cpu' in text(code[2])
  training, evaluation, numbers, pictures = code[-4:]
  assert 'ssljax.main --config=configs/vicreg_tico.py:smoke' in text(training)
  assert 'ssljax.evaluate' in text(evaluation)
  assert 'linear_probe_accuracy' in text(numbers)

  with open(workdir / 'results.json') as f:
    results = json.load(f)
  step = results['steps']  # 4; the preset and the flags were the test's.
  assert results['config']['preset'] == 'smoke' and step == 4
  assert results['config']['model']['width'] == 0.0625
  assert results['config']['train']['num_epochs'] == 1
  with open(workdir / 'eval' / f'{step}.json') as f:
    evaluated = json.load(f)
  assert 0.0 <= evaluated['linear_probe_accuracy'] <= 1.0
  assert f'evaluation at step {step}' in text(numbers)
  shown = _outputs(pictures, 'image/png')
  assert len(shown) == len(os.listdir(workdir / 'eval' / str(step))) >= 2
  assert all(len(picture) > 1000 for picture in shown)  # Base64 PNGs.
