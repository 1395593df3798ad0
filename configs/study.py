"""The study's own setup, for a GPU: the encoder and projector it used, for
the three losses it compared.

    python -m ssljax.main --config=configs/study.py:vicreg_tico --workdir=DIR

The part after the colon names the loss: vicreg, tico or vicreg_tico.

What the study specified, and is kept:
- a ResNet-50 encoder (here with the CIFAR stem of every recipe in ssljax:
  a 3x3 stride-1 convolution and no max-pool, for 32x32 images);
- Barlow Twins' projector (Zbontar et al., ICML 2021): three linear layers
  of 8192, BatchNorm and ReLU between them;
- the three losses, with the hybrid's covariance term as the study writes
  it (B = z1ᵀz1/n, C <- beta C + (1 - beta) B, the term mean_i z1_i C
  z1_iᵀ: raw z1, one branch), which is `vicreg_tico`'s default, and TiCo's
  beta = 0.9 and rho = 8;
- CIFAR-10, scored by a linear probe.

What it left unspecified, and what we chose:
- the optimizer, batch, schedule and augmentation: each loss's CIFAR recipe
  in ssljax, its `gpu` preset (LARS, lr 0.3 per 256 images at batch 256, 10
  warmup epochs then cosine, 1000 epochs, bfloat16 compute, the
  solo-learn augmentations). The study's accuracies (0.30-0.42) are those
  of far shorter training, whose length it does not give; we did not guess
  it. To match a budget, set `--config.train.num_epochs`;
- the loss weights at an 8192-d embedding: the defaults of each loss's
  config (VICReg's 25/25/1, which its paper used at 8192 dimensions; TiCo's
  rho = 8 and the hybrid's nu = 0.01, which were chosen at narrower
  projectors and are not tuned for this one);
- the evaluation: the full 10,000-image test set, not one batch of 1,024
  (whose 95% interval at an accuracy of 0.4 is about +-3 points), and the
  probe of `evaluators/linear_probe.py` (L2 chosen on a held-out 10%).
"""
import importlib.util
import os

from ssljax.errors import InputError

STUDY_LOSSES = ('vicreg', 'tico', 'vicreg_tico')
PRESETS = STUDY_LOSSES  # What this file takes after the colon.
BARLOW_TWINS_PROJECTOR = (8192, 8192, 8192)


def get_config(loss: str = 'vicreg_tico'):
  if loss not in STUDY_LOSSES:
    raise InputError(f'configs/study.py:{loss}: the study compared '
                     f'{list(STUDY_LOSSES)}; name one of them after the '
                     'colon, e.g. --config=configs/study.py:vicreg_tico.')
  # The loss's own config file, beside this one (wherever the run starts).
  spec = importlib.util.spec_from_file_location(
      f'ssljax_config_{loss}', os.path.join(os.path.dirname(__file__),
                                            f'{loss}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('gpu')
  config.model.backbone = 'resnet50'
  config.model.projector_widths = BARLOW_TWINS_PROJECTOR
  return config
