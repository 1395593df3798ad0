"""BYOL (Grill et al., NeurIPS 2020) on CIFAR-10.

Presets (`configs/byol.py:cpu`): full (default), cpu, cpu10, cpu30, cpu120,
smoke, gpu, tpu; see `ssljax/defaults.py`. The full recipe is solo-learn's
CIFAR-10 BYOL: LARS, lr 1.0 x batch/256, weight decay 1e-5, projector 4096 ->
256, predictor 4096 -> 256, tau from 0.99 to 1 on a cosine schedule, crops of
scale 0.08-1, solarization on the second view only, no blur, 1000 epochs, 10
warmup epochs.

gpu and tpu are that recipe in bfloat16 at batch 256 (peak lr 1.0) and 1024
(peak 4.0, solo-learn's linear scaling). At batch 1024 a step sees 4x the
images, so tpu starts tau at 0.99^4 = 0.961, the EMA scaling rule of
Busbridge et al. ("How to Scale Your EMA", NeurIPS 2023: momentum rho ->
rho^k when the batch grows k-fold, which kept BYOL's accuracy up to batch
24,576): the target then averages the same ~0.5 epoch of training as at
batch 256, instead of ~2 epochs.
"""
from ssljax import defaults
from ssljax.methods import byol


def get_config(preset: str = 'full'):
  config = defaults.get_config(preset)
  config.method = byol.default_config()
  config.optimizer.learning_rate = 1.0
  config.optimizer.weight_decay = 1e-5
  config.augment.solarize_prob = (0.0, 0.2)
  widths = {'full': (4096, 256), 'cpu': (1024, 256),
            'smoke': (256, 64)}[defaults.scale(preset)]
  config.model.projector_widths = widths
  config.model.predictor_widths = widths
  if defaults.scale(preset) == 'full':
    config.augment.crop_scale = (0.08, 1.0)
  if preset == 'tpu':
    config.method.base_tau **= config.train.batch_size / 256
  if defaults.scale(preset) == 'cpu':
    # The target network adds a forward pass of both views to every step;
    # batch 64 is faster per image on a 2-core CPU
    # (experiments/results/cpu_presets.md), which keeps the four epochs
    # within the 30-minute budget.
    config.train.batch_size = 64
  return config
