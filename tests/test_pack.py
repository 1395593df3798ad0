"""A dataset's arrays in parts that travel (`python -m ssljax.pack`): put
together byte for byte, a missing or damaged part refused by name, and the
result trained on without TFDS."""
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from ssljax import data
from ssljax import pack
from ssljax.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PART_BYTES = 5000


@pytest.fixture
def packed(tmp_path):
  """(the folders packed, the parts' folder): two splits of random images
  as the array cache holds them, in parts of PART_BYTES."""
  rng = np.random.default_rng(0)
  folders = {}
  for split, n in (('train', 100), ('test', 6)):
    folders[split] = str(tmp_path / 'cache' / split)
    data.write_array_cache(
        folders[split], rng.integers(0, 256, (n, 8, 8, 3), np.uint8),
        rng.integers(0, 3, n).astype(np.int32))
  parts = str(tmp_path / 'parts')
  pack.pack(folders, {'name': 'tiny', 'class_names': ['a', 'b', 'c']}, parts,
            PART_BYTES)
  return folders, parts


def test_the_parts_are_put_together_byte_for_byte(packed, tmp_path):
  folders, parts = packed
  sizes = [os.path.getsize(os.path.join(parts, p)) for p in os.listdir(parts)
           if p != pack.MANIFEST]
  assert max(sizes) <= PART_BYTES and len(sizes) > 3  # Train spans several.
  arrays = tmp_path / 'arrays'
  pack.unpack(parts, str(arrays))
  for split, folder in folders.items():
    assert sorted(os.listdir(arrays / split)) == sorted(os.listdir(folder))
    for name in os.listdir(folder):
      with open(os.path.join(folder, name), 'rb') as a, open(
          arrays / split / name, 'rb') as b:
        assert a.read() == b.read(), (split, name)
  config = ml_collections.ConfigDict({'data': {
      'name': f'arrays:{arrays}', 'score_on': 'test'}})
  splits = data.load_splits(config)
  images, labels = data.read_array_cache(folders['train'])
  np.testing.assert_array_equal(splits['train'][0], images)
  np.testing.assert_array_equal(splits['train'][1], labels)
  assert data.class_names(config.data.name, None, 3) == ['a', 'b', 'c']


def flip_first_byte(path):
  with open(path, 'r+b') as f:
    byte = f.read(1)
    f.seek(0)
    f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize('damage,message', [
    (lambda path: os.remove(path), 'train.part001 is missing'),
    (lambda path: flip_first_byte(path), 'train.part001 is damaged'),
])
def test_a_missing_or_damaged_part_is_named_and_nothing_written(
    packed, tmp_path, damage, message):
  _, parts = packed
  damage(os.path.join(parts, 'train.part001'))
  with pytest.raises(InputError, match=message):
    pack.unpack(parts, str(tmp_path / 'arrays'))
  assert not (tmp_path / 'arrays').exists()


def test_a_folder_unpack_did_not_write_is_not_replaced(packed, tmp_path):
  _, parts = packed
  (tmp_path / 'arrays' / 'train').mkdir(parents=True)
  (tmp_path / 'arrays' / 'train' / 'mine.txt').write_text('keep me')
  with pytest.raises(InputError, match='holds no unpacked split'):
    pack.unpack(parts, str(tmp_path / 'arrays'))
  assert (tmp_path / 'arrays' / 'train' / 'mine.txt').read_text() == 'keep me'
  pack.unpack(parts, str(tmp_path / 'other'))
  pack.unpack(parts, str(tmp_path / 'other'))  # Unpacked before: replaced.
  assert sorted(os.listdir(tmp_path / 'other')) == [
      'dataset.json', 'test', 'train']


def test_damaged_arrays_are_refused_with_the_command_that_mends_them(
    packed, tmp_path):
  _, parts = packed
  arrays = tmp_path / 'arrays'
  pack.unpack(parts, str(arrays))
  with open(arrays / 'test' / 'images.npy', 'rb') as f:
    size = len(f.read())
  with open(arrays / 'test' / 'images.npy', 'r+b') as f:  # The last pixel.
    f.seek(size - 1)
    last = f.read(1)
    f.seek(size - 1)
    f.write(bytes([last[0] ^ 0xFF]))
  with pytest.raises(data.DatasetDamagedError,
                     match=r'test split .* python -m ssljax.pack --unpack'):
    data.load_arrays(str(arrays), 'test')


def test_unpacking_loads_neither_tensorflow_nor_tfds(packed, tmp_path):
  """As on an accelerator's image that has neither."""
  _, parts = packed
  proc = subprocess.run(
      [sys.executable, '-c', 'import atexit, runpy, sys; '
       'atexit.register(lambda: print("loaded:", *sorted(m for m in ('
       '"tensorflow", "tensorflow_datasets") if m in sys.modules))); '
       'sys.argv[0] = "pack"; runpy.run_module("ssljax.pack", '
       'run_name="__main__")',
       '--unpack', f'--parts={parts}', f'--arrays={tmp_path / "arrays"}'],
      cwd=ROOT, capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr
  assert f'--config.data.name=arrays:{tmp_path / "arrays"}' in proc.stdout
  assert proc.stdout.rstrip().endswith('loaded:'), proc.stdout


def test_without_tfds_a_tfds_dataset_is_refused_naming_the_way_round(
    monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  monkeypatch.delenv('SSLJAX_CACHE_DIR', raising=False)
  with pytest.raises(InputError, match="TFDS is not installed.*'cifar10'.*"
                     'python -m ssljax.pack.*arrays:PATH'):
    data.load_split('cifar10', 'train', '/nonexistent')
