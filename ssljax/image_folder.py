"""A folder of the user's own images as a dataset: `--config.data.name=folder:PATH`.

PATH holds image files (PNG, JPEG, ...), either
  - directly (or in any sub-folders that are not classes): unlabelled; the
    run trains, logs its diagnostics and checkpoints, and skips the
    evaluators that need labels; or
  - one sub-folder per class, each holding images only: labelled by the
    sub-folder's name (classes in sorted order), so the probes run too.
Where PATH has `train` and `test` sub-folders, they are the splits, each laid
out as above; otherwise every tenth image (in sorted order) is the test
split. Images are read once with Pillow, as RGB, cropped to a centred
square and resized to the smallest side found in PATH (at most MAX_SIZE), so the
split is one uint8 array that can live on the devices.
"""
import os

import numpy as np

from ssljax.errors import InputError

PREFIX = 'folder:'
EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp', '.tif',
              '.tiff')
# Large photos are resized on load: 50,000 images of 128x128 take 2.5 GB of
# device memory, about the most a laptop's CPU run can hold beside the model.
MAX_SIZE = 128


def path_of(name: str) -> str | None:
  """The folder `config.data.name` names, or None for a TFDS name."""
  return (os.path.expanduser(name[len(PREFIX):]) if name.startswith(PREFIX)
          else None)


def _images_under(folder: str) -> list[str]:
  found = []
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    found += [os.path.join(root, f) for f in sorted(files)
              if f.lower().endswith(EXTENSIONS)]
  return found


def _listing(folder: str) -> tuple[list[str], list[int] | None, list[str]]:
  """(image paths, class numbers or None, class names) of a split's
  folder."""
  entries = sorted(os.listdir(folder))
  subfolders = [e for e in entries if os.path.isdir(os.path.join(folder, e))]
  loose = [e for e in entries if e.lower().endswith(EXTENSIONS)]
  if subfolders and not loose:
    per_class = [_images_under(os.path.join(folder, c)) for c in subfolders]
    if all(per_class):  # One sub-folder of images per class.
      return ([p for paths in per_class for p in paths],
              [c for c, paths in enumerate(per_class) for _ in paths],
              subfolders)
  return _images_under(folder), None, []


def _split_folder(path: str, split: str) -> str | None:
  """The split's own folder, where PATH has train/ and test/."""
  if all(os.path.isdir(os.path.join(path, s)) for s in ('train', 'test')):
    return os.path.join(path, split)
  return None


def class_names(name: str) -> list[str]:
  """The class sub-folders' names, in class order ([] when unlabelled)."""
  path = path_of(name)
  return _listing(_split_folder(path, 'train') or path)[2]


def _split_listing(path: str, split: str):
  if _split_folder(path, split):
    return _listing(_split_folder(path, split))[:2]
  paths, labels, _ = _listing(path)
  keep = [i for i in range(len(paths)) if (i % 10 == 9) == (split == 'test')]
  return ([paths[i] for i in keep],
          None if labels is None else [labels[i] for i in keep])


def _read(path: str, size: int | None) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as image:
    image = image.convert('RGB')
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if size and side != size:
      image = image.resize((size, size), Image.BICUBIC)
    return np.asarray(image, np.uint8)


def load_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
  """(uint8 images [N, S, S, 3], int32 labels [N] or None) of `split`."""
  # Here: only a folder needs Pillow, which an accelerator's image may lack.
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = path_of(name)
  if not os.path.isdir(path):
    raise InputError(f'{name!r}: {path!r} is not a folder. Pass '
                     f'--config.data.name={PREFIX}<a folder of images>.')
  paths, labels = _split_listing(path, split)
  if not paths:
    raise InputError(f'{name!r}: no images ({", ".join(EXTENSIONS)}) for '
                     f'the {split!r} split under {path!r}.')
  try:
    sides = []
    for p in _images_under(path):  # Both splits: one size for both.
      with Image.open(p) as image:
        sides.append(min(image.size))
    size = min(min(sides), MAX_SIZE)
    images = np.stack([_read(p, size) for p in paths])
  except OSError as e:
    raise InputError(f'{name!r}: an image could not be read: {e}. Remove '
                     'or replace it.') from None
  return images, None if labels is None else np.asarray(labels, np.int32)
