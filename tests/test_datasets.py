"""Datasets other than CIFAR-10 train: a folder of the user's own images
(unlabelled, or one sub-folder per class) and TFDS's mock data of CIFAR-100
and STL-10 (96x96)."""
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from ssljax import image_folder
from ssljax import train


def _write_pngs(folder, count, classes=None, size=64, seed=0):
  """`count` random 64x64 PNGs: in `folder`, or spread over one sub-folder
  per class, each class a different mean colour."""
  rng = np.random.default_rng(seed)
  for i in range(count):
    label = i % classes if classes else None
    where = folder / f'class_{label}' if classes else folder
    where.mkdir(parents=True, exist_ok=True)
    tint = np.array([60 * (label or 0), 120, 200 - 60 * (label or 0)])
    pixels = np.clip(rng.normal(tint, 40, (size, size, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(where / f'{i:04d}.png')


def _short(config, workdir, name, evals=(), collapse_images=0):
  """Two steps of 16 of 180 images, with only the evaluators named."""
  config.data.name = name
  config.train.num_epochs = 0.2
  config.evals = {k: v for k, v in config.evals.items() if k in evals}
  config.collapse.num_images = collapse_images
  return train.train_and_evaluate(config, str(workdir))


def test_a_folder_lists_its_images_classes_and_splits(tmp_path):
  _write_pngs(tmp_path / 'flat', 20)
  _write_pngs(tmp_path / 'classes', 20, classes=2)
  (tmp_path / 'flat' / 'notes.txt').write_text('not an image')
  images, labels = image_folder.load_split(f'folder:{tmp_path}/flat', 'train')
  assert images.shape == (18, 64, 64, 3) and labels is None
  images, labels = image_folder.load_split(f'folder:{tmp_path}/classes',
                                           'test')
  # Every tenth of the 20, in class order: class_0's 10th, class_1's 10th.
  assert images.shape == (2, 64, 64, 3) and labels.tolist() == [0, 1]
  assert image_folder.class_names(f'folder:{tmp_path}/classes') == [
      'class_0', 'class_1']
  Image.new('RGB', (80, 48)).save(tmp_path / 'flat' / 'wide.png')
  images, _ = image_folder.load_split(f'folder:{tmp_path}/flat', 'train')
  assert images.shape[1:] == (48, 48, 3)  # Centre squares, the smallest.


@pytest.mark.slow
def test_a_folder_of_unlabelled_pngs_trains_without_the_probes(
    tiny_config, tmp_path, capsys):
  _write_pngs(tmp_path / 'images', 200)
  results = _short(tiny_config, tmp_path / 'run', f'folder:{tmp_path}/images',
                   evals=('linear_probe', 'knn'), collapse_images=16)
  assert results['steps'] == 2 and not results['evals']
  assert 'no labels, so knn, linear_probe will not run' in (
      capsys.readouterr().out)
  assert 'feature_rankme' in results['last_diagnostics']  # Still logged,
  assert (tmp_path / 'run' / 'checkpoints' / '2').is_dir()  # and saved.


@pytest.mark.slow
def test_a_folder_with_a_sub_folder_per_class_gets_its_probe(tiny_config,
                                                             tmp_path):
  _write_pngs(tmp_path / 'images', 200, classes=2)
  results = _short(tiny_config, tmp_path / 'run', f'folder:{tmp_path}/images',
                   evals=('linear_probe',))
  assert results['evals']['linear_probe']['test_accuracy'] > 0.9  # Colours.


@pytest.mark.slow
@pytest.mark.parametrize('name', ['cifar100', 'stl10'])  # 32x32, 96x96.
def test_tfds_datasets_of_other_shapes_train(tiny_config, tmp_path, name):
  with tfds.testing.mock_data(num_examples=180):
    results = _short(tiny_config, tmp_path, name)
  assert results['steps'] == 2 and results['config']['data']['name'] == name
  assert (tmp_path / 'checkpoints' / '2').is_dir()
