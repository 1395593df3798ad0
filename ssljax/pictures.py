"""Pictures of an evaluation, drawn with matplotlib as uint8 RGB arrays
[H, W, 3], which `ssljax.evaluate` saves as PNG and every writer sends to
TensorBoard as images. Where matplotlib is not installed (an accelerator's
image may lack it) each picture is None and is left out; the numbers are
written all the same."""
import functools
import io

import numpy as np


@functools.cache
def pyplot():
  """matplotlib's pyplot, rendering to memory (no display), loaded at the
  first picture (a command refused at its start need not spend 0.4 s on
  it); None, said once, where matplotlib is not installed."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
  except ImportError:
    print('Note: matplotlib is not installed; the evaluations are written '
          'without their pictures.', flush=True)
    return None
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _rendered(figure) -> np.ndarray:
  """The figure as uint8 RGB, and closed."""
  plt = pyplot()
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
  plt.close(figure)
  buffer.seek(0)
  return (plt.imread(buffer, format='png')[..., :3] * 255).round().astype(
      np.uint8)


def save_png(path: str, image: np.ndarray):
  """Writes a uint8 [H, W, 3] picture as PNG."""
  plt = pyplot()
  plt.imsave(path, image)


def spectrum(curves: dict[str, np.ndarray], title: str) -> np.ndarray | None:
  """Each curve's singular values (or eigenvalues), largest first, divided
  by the largest, on a log scale: a flat curve is a spread representation,
  a cliff after a few values a dimensionally collapsed one. Curves are
  labelled by their names, underscores as spaces."""
  plt = pyplot()
  if plt is None:
    return None
  figure, axes = plt.subplots(figsize=(5, 3.5))
  for name, values in curves.items():
    values = np.asarray(values, np.float64)
    axes.plot(np.arange(1, len(values) + 1),
              np.maximum(values / max(values[0], 1e-30), 1e-12),
              label=name.replace('_', ' '))
  axes.set(xscale='log', yscale='log', xlabel='index',
           ylabel='value / largest', title=title)
  axes.legend()
  axes.grid(alpha=0.3)
  return _rendered(figure)


def confusion_matrix(counts: np.ndarray, class_names: list[str],
                     title: str) -> np.ndarray | None:
  """Rows: true class; columns: predicted class; cells: the share of the
  row's images, so each row sums to 1."""
  plt = pyplot()
  if plt is None:
    return None
  k = len(class_names)
  shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
  figure, axes = plt.subplots(figsize=(5.5, 5))
  axes.imshow(shares, cmap='Blues', vmin=0, vmax=1)
  for i in range(k):
    for j in range(k):
      axes.text(j, i, f'{shares[i, j]:.2f}', ha='center', va='center',
                fontsize=7, color='white' if shares[i, j] > 0.5 else 'black')
  axes.set_xticks(range(k), class_names, rotation=45, ha='right')
  axes.set_yticks(range(k), class_names)
  axes.set(xlabel='predicted', ylabel='true', title=title)
  return _rendered(figure)


def class_map(points: np.ndarray, labels: np.ndarray, class_names: list[str],
              title: str) -> np.ndarray | None:
  """A 2-D embedding [N, 2] of images, one colour per class."""
  plt = pyplot()
  if plt is None:
    return None
  figure, axes = plt.subplots(figsize=(6, 5))
  colours = plt.get_cmap('tab10' if len(class_names) <= 10 else 'tab20')
  for c, name in enumerate(class_names):
    chosen = labels == c
    axes.scatter(points[chosen, 0], points[chosen, 1], s=2, alpha=0.6,
                 color=colours(c % colours.N), label=name)
  axes.legend(markerscale=5, fontsize=7, loc='center left',
              bbox_to_anchor=(1, 0.5))
  axes.set(xticks=[], yticks=[], title=title)
  return _rendered(figure)
