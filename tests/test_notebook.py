"""experiments/colab_tpu.ipynb: valid and stored without outputs, and its code
run cell by cell, as Colab runs it, against a finished run: its commands
resolve to a valid config, and its last cells read the run's numbers and
pictures. Its two commands, `python -m ssljax.main` and `ssljax.evaluate`,
are what the other end-to-end tests run; a kernel and TensorBoard are not
started (the `%tensorboard` cell is skipped)."""
import os
import shutil
import sys
import types

import pytest

from ssljax.compare import runs

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                        'experiments', 'colab_tpu.ipynb')


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
def test_the_notebooks_cells_resolve_their_commands_and_read_a_run(
    trained_run, tmp_path, monkeypatch, capsys):
  import nbformat  # pylint: disable=g-import-not-at-top
  workdir = shutil.copytree(trained_run[1], tmp_path / 'run')
  (tmp_path / 'tensorflow_datasets' / 'cifar10').mkdir(parents=True)
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tensorflow_datasets'))
  monkeypatch.setenv('SSLJAX_NOTEBOOK_PRESET', 'smoke')
  monkeypatch.setenv('SSLJAX_NOTEBOOK_WORKDIR', str(workdir))
  monkeypatch.chdir(os.path.dirname(NOTEBOOK))  # Colab's working directory.
  shown = []
  display = types.ModuleType('IPython.display')
  display.Image = lambda filename: ('image', filename)
  display.Markdown = lambda text: ('markdown', text)
  display.display = shown.append
  monkeypatch.setitem(sys.modules, 'IPython', types.ModuleType('IPython'))
  monkeypatch.setitem(sys.modules, 'IPython.display', display)

  commands, namespace = [], {}
  for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
    if cell.cell_type != 'code' or '%tensorboard' in cell.source:
      continue
    exec(compile(cell.source, NOTEBOOK, 'exec'), namespace)  # pylint: disable=exec-used
    namespace['run'] = commands.append  # Its commands, recorded, not run.

  training, evaluation = commands
  assert training[1:4] == ['-m', 'ssljax.main',
                           '--config=configs/vicreg_tico.py:smoke']
  assert f'--workdir={workdir}' in training and evaluation[1:3] == [
      '-m', 'ssljax.evaluate']
  config = runs.resolve_config([a for a in training if a.startswith(
      '--config')])  # The config file, preset and overrides are valid.
  assert config.data.data_dir == str(tmp_path / 'tensorflow_datasets')
  out = capsys.readouterr().out
  assert "preset 'smoke'" in out and 'platform cpu' in out
  assert 'evaluation at step 6' in out and 'linear_probe_accuracy' in out
  assert 'training: 6 steps' in out
  pictures = [item for item in shown if item[0] == 'image']
  assert len(pictures) == len(os.listdir(workdir / 'eval' / '6')) >= 2
