"""`python -m ssljax.pack`: a dataset's decoded arrays cut into parts that
travel, and put together again where they arrive.

A machine that has no TensorFlow or TFDS (an accelerator's image), or that
receives files of limited size only, trains on the arrays of a dataset
prepared elsewhere:

    python -m ssljax.pack --dataset=cifar10 --parts=DIR           # here
    python -m ssljax.pack --unpack --parts=DIR --arrays=ARRAYS    # there
    python -m ssljax.main --config=configs/vicreg.py:gpu \\
        --config.data.name=arrays:ARRAYS --workdir=...

Packing decodes each split as training does (`data.load_split`, through the
array cache where one is set), writes its arrays as the cache holds them
(`data.write_array_cache`), and cuts their bytes into parts of at most
--part_mb megabytes; MANIFEST names every file and part with its size and
sha256. Unpacking checks every part before it writes anything, refuses a
missing or damaged part by name, and puts back each split's files byte for
byte; every load then checks them against their checksums again.
"""
import hashlib
import json
import os
import shutil
import tempfile

from absl import flags

from ssljax import cli
from ssljax.errors import InputError

MANIFEST = 'MANIFEST.json'
SPLITS = ('train', 'test')

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags, defined only when it runs: a module that defines
  flags at import clashes with another command's of the same name."""
  flags.DEFINE_string('parts', None, 'The folder of the parts and their '
                      'MANIFEST: written by packing, read by --unpack.')
  flags.DEFINE_string('dataset', 'cifar10', 'The TFDS dataset to pack.')
  flags.DEFINE_string('data_dir', None, "Where TFDS looks (default: "
                      '$TFDS_DATA_DIR, else ~/tensorflow_datasets).')
  flags.DEFINE_float('part_mb', 60.0, 'The largest part, in megabytes (10^6 '
                     'bytes).')
  flags.DEFINE_bool('unpack', False, 'Put the parts of --parts together in '
                    '--arrays.')
  flags.DEFINE_string('arrays', None, 'Where --unpack writes the arrays: '
                      'train with --config.data.name=arrays:ARRAYS.')


def sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def pack(split_folders: dict[str, str], dataset: dict, parts: str,
         part_bytes: int) -> dict:
  """Writes the files of each split's folder (`data.write_array_cache`'s)
  as parts of at most `part_bytes` into `parts`, and the MANIFEST that
  names them, with `dataset` ({'name', 'class_names'}); returns it."""
  os.makedirs(parts, exist_ok=True)
  manifest = {'dataset': dataset, 'splits': {}}
  for split, folder in split_folders.items():
    files, contents = [], []
    for name in sorted(os.listdir(folder)):
      with open(os.path.join(folder, name), 'rb') as f:
        contents.append(f.read())
      files.append({'name': name, 'bytes': len(contents[-1]),
                    'sha256': sha256(contents[-1])})
    stream = b''.join(contents)
    pieces = []
    for i, start in enumerate(range(0, len(stream), part_bytes)):
      piece = stream[start:start + part_bytes]
      name = f'{split}.part{i:03d}'
      with open(os.path.join(parts, name), 'wb') as f:
        f.write(piece)
      pieces.append({'name': name, 'bytes': len(piece),
                     'sha256': sha256(piece)})
    manifest['splits'][split] = {'files': files, 'parts': pieces}
  with open(os.path.join(parts, MANIFEST), 'w') as f:
    json.dump(manifest, f, indent=1)
  return manifest


def read_manifest(parts: str) -> dict:
  try:
    with open(os.path.join(parts, MANIFEST)) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise InputError(f'{os.path.join(parts, MANIFEST)} cannot be read ({e}); '
                     'copy it again from where the parts were packed.'
                     ) from None


def checked_stream(parts: str, split: str, pieces: list[dict]) -> bytes:
  """The bytes of a split's parts, each checked; a missing or damaged part
  is refused by name, all of them at once."""
  stream, bad = [], []
  for piece in pieces:
    path = os.path.join(parts, piece['name'])
    try:
      with open(path, 'rb') as f:
        data = f.read()
    except OSError:
      bad.append(f'{piece["name"]} is missing')
      continue
    if len(data) != piece['bytes'] or sha256(data) != piece['sha256']:
      bad.append(f'{piece["name"]} is damaged ({len(data)} bytes, '
                 f'{piece["bytes"]} packed; its sha256 differs)')
    stream.append(data)
  if bad:
    raise InputError(f'The {split} split cannot be put together from {parts}: '
                     f'{"; ".join(bad)}. Copy those parts again; nothing was '
                     'written.')
  return b''.join(stream)


def checked_files(parts: str, split: str, entry: dict) -> dict[str, bytes]:
  """{name: bytes} of a split's files, cut from its checked parts and each
  checked against the MANIFEST."""
  stream = checked_stream(parts, split, entry['parts'])
  files, offset = {}, 0
  for file in entry['files']:
    files[file['name']] = stream[offset:offset + file['bytes']]
    offset += file['bytes']
    if sha256(files[file['name']]) != file['sha256']:
      raise InputError(f'{file["name"]} of the {split} split does not match '
                       f'{MANIFEST} in {parts}; pack it again.')
  if offset != len(stream):
    raise InputError(f'The parts of the {split} split hold {len(stream)} '
                     f'bytes where {MANIFEST} in {parts} names {offset}; '
                     'pack it again.')
  return files


def unpack(parts: str, arrays: str) -> dict:
  """Puts each split of the MANIFEST in `parts` back as ARRAYS/SPLIT/ (the
  files packed, byte for byte) with ARRAYS/dataset.json. Everything is
  checked before anything is written; each split is written to a new
  folder renamed into place, and replaces only a split unpacked before (a
  folder with checksums.json). Returns the MANIFEST."""
  manifest = read_manifest(parts)
  splits = {split: checked_files(parts, split, entry)
            for split, entry in manifest['splits'].items()}
  for split in splits:
    target = os.path.join(arrays, split)
    if os.path.exists(target) and not os.path.exists(
        os.path.join(target, 'checksums.json')):
      raise InputError(f'{target} exists and holds no unpacked split; '
                       'choose another --arrays; nothing was written.')
  os.makedirs(arrays, exist_ok=True)
  for split, files in splits.items():
    new = tempfile.mkdtemp(dir=arrays, prefix=f'.new-{split}-')
    old = os.path.join(arrays, f'.old-{split}')
    target = os.path.join(arrays, split)
    try:
      for name, content in files.items():
        with open(os.path.join(new, name), 'wb') as f:
          f.write(content)
      if os.path.exists(target):
        os.rename(target, old)
      os.rename(new, target)
    except BaseException:
      if os.path.exists(old) and not os.path.exists(target):
        os.rename(old, target)  # The split unpacked before stays.
      raise
    finally:
      shutil.rmtree(new, ignore_errors=True)
      shutil.rmtree(old, ignore_errors=True)
  with open(os.path.join(arrays, 'dataset.json'), 'w') as f:
    json.dump(manifest['dataset'], f, indent=1)
  return manifest


def main():
  if not FLAGS.parts:
    raise InputError('--parts=DIR names the folder of the parts.')
  if FLAGS.unpack:
    if not FLAGS.arrays:
      raise InputError('--unpack needs --arrays=DIR, where the arrays go.')
    manifest = unpack(FLAGS.parts, FLAGS.arrays)
    print(f'{manifest["dataset"]["name"]}: '
          f'{", ".join(manifest["splits"])} in {FLAGS.arrays}; train with '
          f'--config.data.name=arrays:{FLAGS.arrays}')
    return
  if not FLAGS.part_mb > 0:
    raise InputError(f'--part_mb={FLAGS.part_mb} must be above 0.')
  from ssljax import data  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    folders, num_classes = {}, 0
    for split in SPLITS:
      images, labels = data.load_split(FLAGS.dataset, split, FLAGS.data_dir)
      folders[split] = os.path.join(tmp, split)
      data.write_array_cache(folders[split], images, labels)
      if labels is not None and len(labels):
        num_classes = max(num_classes, int(labels.max()) + 1)
    manifest = pack(folders, {'name': FLAGS.dataset, 'class_names':
                              data.class_names(FLAGS.dataset, FLAGS.data_dir,
                                               num_classes)},
                    FLAGS.parts, int(FLAGS.part_mb * 1e6))
  for split, entry in manifest['splits'].items():
    print(f'{split}: {len(entry["parts"])} parts, '
          f'{sum(p["bytes"] for p in entry["parts"]) / 1e6:.1f} MB')
  print(f'In {FLAGS.parts}; there: python -m ssljax.pack --unpack '
        f'--parts={FLAGS.parts} --arrays=DIR')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
