"""The VICReg-TiCo hybrid on CIFAR-10: VICReg's invariance and variance terms
plus TiCo's covariance contrast against a running covariance C.

Presets (`configs/vicreg_tico.py:cpu`): full (default), cpu, cpu10, cpu30,
cpu120, smoke, gpu, tpu; see `ssljax/defaults.py`. Optimizer and projector are
VICReg's CIFAR recipe; gpu and tpu are it in bfloat16 at batch 256 (peak lr
0.3) and 1024 (peak 1.2), as VICReg's, with beta 0.9 as TiCo's. On the `cpu`
preset the hybrid diverged at VICReg's rate when trained longer (get_config's
comment), so a long run at these rates is worth watching early (`train/loss`),
with a lower `optimizer.learning_rate` the remedy if it diverges.

Defaults of the covariance term: raw z (normalize=False), z1 only
(both_branches=False), nu = 0.01, chosen on the validation split by
`experiments/hybrid_defaults.sh` (experiments/results/hybrid_defaults.md)
and, nu against 0.03, by a seeded comparison (experiments/README.md, "The
hybrid's nu on validation"). With normalised z
the term is blind to the scale of z while VICReg's MSE rewards shrinking it,
so samples of small norm get huge gradients and a large nu diverges; on raw
z the term also holds the scale (it grows as |z|^4). z C z grows like
D * var(z)^2, so scale nu by 256 / D when changing the projector width far
from the tested 256-2048.
"""
from ssljax import defaults
from ssljax.methods import vicreg_tico


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = vicreg_tico.default_config()
  if defaults.scale(preset) == 'cpu':
    # Chosen by the proxy sweep (experiments/results/cpu_presets.md): the
    # hybrid diverges at VICReg's learning rate when trained longer, and gains
    # most from a lower rate and more, smaller steps; batch 64 is also faster
    # per image on a 2-core CPU. 8 epochs rather than 5:
    # experiments/results/cpu_single_runs.md gives both, and the host speeds
    # they were measured at.
    config.train.batch_size = 64
    config.optimizer.learning_rate = 0.15
    if preset == 'cpu':  # The budgets choose their own length.
      config.train.num_epochs = 8.0
  return config
