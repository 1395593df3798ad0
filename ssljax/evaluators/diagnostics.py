"""Collapse diagnostics of a checkpoint (`ssljax.collapse`), with its
spectrum as a picture and the warnings the thresholds of
`config.collapse` raise.

The encoder features ('feature_*') are the evaluated ones, BatchNorm in
inference mode, on the whole clean test split (RankMe needs many more images
than dimensions). The embeddings, alignment and uniformity are measured as
the training loop measures them at every log (`Features.diagnose`), on
two views of the first `num_images` test images, and so is the method
state.
"""
import jax
import ml_collections
import numpy as np

from ssljax import collapse
from ssljax import evaluators
from ssljax import pictures
from ssljax import ranges

_spread = jax.jit(collapse.spread, static_argnums=1)


def default_config() -> ml_collections.ConfigDict:
  """num_images: the held-out images of the embedding, alignment and
  uniformity measures (at least 2: pairs make the uniformity); a multiple
  of every usual device count."""
  return ml_collections.ConfigDict(dict(every_epochs=0.0, num_images=1024))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'num_images': ranges.between(2)}

# What each setting of default_config() means (--show_config).
HELP = {
    'num_images': 'held-out images the collapse measures are taken on',
}


def make(eval_config: ml_collections.ConfigDict,
         config: ml_collections.ConfigDict) -> evaluators.Evaluator:
  def run(features: evaluators.Features) -> dict:
    measures = features.diagnose(features.test_images[:eval_config.num_images])
    measures.update(jax.device_get(_spread(features.test, 'feature')))
    found = collapse.warnings(measures, config.collapse)
    curves = {name: value for name, value in measures.items()
              if np.ndim(value)}
    result = {name: (value.tolist() if np.ndim(value) else value.item())
              for name, value in measures.items()}
    result['warnings'] = list(found.values())
    result['images'] = {'spectrum': pictures.spectrum(
        curves, f'spectra at step {int(features.state.step)}')}
    return result

  def details(result: dict) -> list[str]:
    lines = [f"embedding: RankMe {result['embedding_rankme']:.1f} of at "
             f"most {len(result['embedding_singular_values'])}, normalised "
             f"std {result['embedding_normalized_std_mean']:.4f} (1/sqrt(D) "
             f"= {result['embedding_dim'] ** -0.5:.4f})"
             ] if 'embedding_rankme' in result else []
    for name in result:
      if name.endswith('_trace'):
        prefix = name[:-len('_trace')]
        top = ', '.join(f'{v:.3g}'
                        for v in result[f'{prefix}_eigenvalues'][:5])
        lines.append(f'{prefix}: trace {result[name]:.4g}, effective rank '
                     f"{result[f'{prefix}_effective_rank']:.1f}, top "
                     f'eigenvalues {top}')
    return lines + [f'collapse warning: {w}' for w in result['warnings']]

  return evaluators.Evaluator(
      run=run, summary={'rankme': 'feature_rankme', 'alignment': 'alignment',
                        'uniformity': 'uniformity'}, details=details,
      needs_labels=False)
