"""The VICReg-TiCo hybrid on CIFAR-10: VICReg's invariance and variance terms
plus TiCo's covariance contrast against a running covariance C.

Presets (`configs/vicreg_tico.py:cpu`): full (default), cpu, smoke; see
`ssljax/defaults.py`. Optimizer and projector are VICReg's CIFAR recipe.

Defaults of the covariance term: raw z (normalize=False), z1 only
(both_branches=False), nu = 0.01. Chosen by `experiments/hybrid_defaults.sh`
(smoke model, 195 steps on CIFAR-10, one seed; full-test-set linear probe;
see experiments/results/hybrid_defaults.md):
  normalised z, nu = 0 (no covariance term)   0.3282
  normalised z, nu = 8                        0.3386
  normalised z, nu = 8, both branches         0.3460
  normalised z, nu = 24 or 64                 diverged (loss NaN)
  raw z, nu = 0.01                            0.3796
With normalised z the term is blind to the scale of z while VICReg's MSE
rewards shrinking it, so samples of small norm get huge gradients and large
nu diverges; on raw z the term also holds the scale (it grows as |z|^4) and
gave the best probe by 3 points. nu = 0.01 puts the term at about the size of
the invariance term at initialisation for a 2048-d projector (z C z ~ D * var^2).
One seed and a short run: differences of a point are within noise.
"""
from ssljax import defaults
from ssljax.methods import vicreg_tico


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = vicreg_tico.default_config()
  return config
