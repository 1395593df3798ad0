"""experiments/colab_tpu.ipynb: valid and stored without outputs, and its code
run cell by cell, as Colab runs it, against a finished run: its commands
resolve to a valid config, and its last cells read the run's numbers and
pictures. Its two commands, `python -m ssljax.main` and `ssljax.evaluate`,
are what the other end-to-end tests run; a kernel and TensorBoard are not
started (the `%tensorboard` cell is skipped)."""
import importlib.util
import os
import shutil
import subprocess
import sys
import types

import pytest

from ssljax.compare import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'experiments', 'colab_tpu.ipynb')


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


def test_the_install_cell_takes_ssljax_from_an_uploaded_archive(
    tmp_path, monkeypatch):
  import nbformat  # pylint: disable=g-import-not-at-top
  archive = tmp_path / 'upload' / 'ssljax.tar.gz'
  archive.parent.mkdir()
  subprocess.run(['git', 'archive', '--prefix=ssljax-main/', '-o',
                  str(archive), 'HEAD'], cwd=ROOT, check=True)
  monkeypatch.setenv('SSLJAX_SOURCE', str(archive))
  monkeypatch.chdir(tmp_path)  # Colab's /content.
  real_find_spec = importlib.util.find_spec  # As on Colab: not installed.
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if (
      name == 'ssljax') else real_find_spec(name, *a))
  settings, install = [c.source for c in nbformat.read(
      NOTEBOOK, as_version=4).cells if c.cell_type == 'code'][:2]
  namespace = {}
  exec(compile(settings, NOTEBOOK, 'exec'), namespace)  # pylint: disable=exec-used
  commands = []
  namespace['run'] = commands.append  # Recorded, not run.
  exec(compile(install, NOTEBOOK, 'exec'), namespace)  # pylint: disable=exec-used
  checkout = str(tmp_path / 'ssljax' / 'ssljax-main')
  assert namespace['REPO_DIR'] == checkout
  assert os.path.isfile(os.path.join(checkout, 'configs', 'vicreg_tico.py'))
  assert commands == [[sys.executable, '-m', 'pip', 'install', '-q', '-e',
                       checkout]]
  monkeypatch.setenv('SSLJAX_SOURCE', str(tmp_path / 'missing.tar.gz'))
  exec(compile(settings, NOTEBOOK, 'exec'), namespace)  # pylint: disable=exec-used
  with pytest.raises(FileNotFoundError, match='No archive at .*upload it'):
    namespace['checkout_from'](namespace['SOURCE'], str(tmp_path / 'other'))


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
