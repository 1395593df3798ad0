"""A 2-D map of the test features coloured by class: t-SNE (van der Maaten &
Hinton 2008, scikit-learn's Barnes-Hut implementation) of the L2-normalised
encoder features of the first `num_images` test images, so that one sees
which classes the representation separates and which it mixes.

t-SNE keeps neighbourhoods, not distances: clusters that are far apart on
the map are not thereby far apart in feature space. It took 11.5 s for
5,000 images of 128-d features on a 2-core CPU (experiments/results/
evaluation.md) and grows faster than linearly with the images, so it is not
among the default evaluators of a training run; `python -m ssljax.evaluate`
runs it.
"""
import time

import ml_collections
import numpy as np

from ssljax import collapse
from ssljax import data
from ssljax import evaluators
from ssljax import pictures
from ssljax import ranges


def default_config() -> ml_collections.ConfigDict:
  """perplexity 30: scikit-learn's default and the paper's usual range
  (5-50)."""
  return ml_collections.ConfigDict(dict(every_epochs=0.0, num_images=5000,
                                        perplexity=30.0))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'num_images': ranges.between(2),
          'perplexity': ranges.POSITIVE}

# What each setting of default_config() means (--show_config).
HELP = {
    'num_images': 'test images in the t-SNE map',
    'perplexity': "t-SNE's perplexity (capped at a third of the images)",
}


def make(eval_config: ml_collections.ConfigDict,
         config: ml_collections.ConfigDict) -> evaluators.Evaluator:
  def run(features: evaluators.Features) -> dict:
    # Here: only this evaluator needs scikit-learn, which an accelerator's
    # image may lack; there the map is left out and the rest evaluated.
    try:
      from sklearn import manifold  # pylint: disable=g-import-not-at-top
    except ImportError:
      print('Note: scikit-learn is not installed; the feature map is left '
            'out.', flush=True)
      return {'seconds': 0.0, 'skipped': 'scikit-learn is not installed'}
    start = time.time()
    x = np.asarray(collapse.l2_normalize(
        features.test[:eval_config.num_images].astype(np.float32),
        collapse.ZERO_SAFE))
    labels = features.test_labels[:len(x)]
    perplexity = min(eval_config.perplexity, (len(x) - 1) / 3)
    tsne = manifold.TSNE(n_components=2, perplexity=perplexity, init='pca',
                         random_state=config.seed)
    points = tsne.fit_transform(x)
    names = data.class_names(config.data.name, config.data.data_dir or None,
                             int(features.test_labels.max()) + 1)
    picture = pictures.class_map(
        points, labels, names, f't-SNE of {len(x)} test images, step '
        f'{int(features.state.step)}')
    return {'num_images': len(x), 'perplexity': perplexity,
            'seconds': time.time() - start,
            'images': {'feature_map': picture}}

  return evaluators.Evaluator(run=run, summary={})
