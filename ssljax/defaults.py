"""The settings every config shares; `configs/<method>.py` starts from here.

Presets trade scale for time and keep one file per method:
  full:  the published CIFAR-10 recipe (ResNet-18, 2048-d projector, 1000
         epochs, LARS); GPU/TPU, in the dtype the device computes fastest
         ('auto').
  gpu:   the full recipe on one GPU, in bfloat16.
  tpu:   the full recipe on a TPU v2-8, v3-8 or v4-8, in bfloat16, at a
         global batch of 1024.
  cpu:   a small encoder and a short schedule that finish, probe included, in
         under 30 minutes on a 2-core laptop CPU.
  cpu10, cpu30, cpu120: `cpu`'s model and augmentation trained for as
         long as 10 (30, 120) minutes of wall time allow, all included, on
         the machine that runs them: the run measures its own step and
         evaluations and chooses its length (`ssljax.budget`), evaluated
         at the start and the end; cpu30 and cpu120 also at each quarter
         (linear probe and kNN), and read out by the multi-scale probe at
         the end (`evaluators.multiscale_probe`). Training longer is the
         lever that measured best; experiments/results/cpu_recipes.md has
         the measurements and the levers not yet tried.
  smoke: the whole path (a few dozen steps on the real data, checkpoint,
         probe) in a few minutes.

The accelerator presets, gpu and tpu, train the full recipe's model and
augmentation (`scale(preset)` is 'full'): ResNet-18 at width 1 on 32x32
views, each method's published projector, 1000 epochs. Both set
`model.dtype='bfloat16'` rather than 'auto', so that a preset computes alike
on every machine (solo-learn's CIFAR recipes train in mixed precision too);
parameters, optimizer state and BatchNorm statistics stay float32, and the
heads' outputs reach the losses in float32 (`methods.common.view_outputs`,
and BYOL's `targets`), so covariances, norms, logits, TiCo's running C and
BYOL's targets are float32 (tests/test_presets.py). Learning rates are per
256 images and the optimizer scales the peak linearly with the batch
(`optim.learning_rate_schedule`, as solo-learn does), so a preset changes
the batch alone; warmup is in epochs (10, the recipes'), the same share of
the run at any batch.
  gpu: batch 256, as the recipes: 195 steps per epoch, 195,000 in all; logs
       every 200 steps (~1 epoch), checkpoints every 4,000 (~20 epochs).
  tpu: batch 1024, 128 per core on 8 cores (and 256 per chip on a v4-8's 4
       devices), so each peak rate is 4x its base; 48 steps per epoch,
       48,000 in all; logs every 100 steps (~2 epochs), checkpoints every
       1,000 (~21 epochs).
Either way a run logs once per 1-2 epochs, where `full` logs twice an epoch,
and writes ~50 checkpoints, keeping the last 3 (a preemption's SIGTERM
checkpoints the step it stops at anyway). What a method's recipe changes
for them is in its config file, the pretext tasks' shared recipe in
`use_pretext_recipe`.
"""
import ml_collections

from ssljax import augment
from ssljax import collapse
from ssljax.errors import InputError
from ssljax.evaluators import diagnostics
from ssljax.evaluators import knn
from ssljax.evaluators import linear_probe
from ssljax.evaluators import multiscale_probe
from ssljax.evaluators import online_probe

PRESETS = ('full', 'cpu', 'cpu10', 'cpu30', 'cpu120', 'smoke', 'gpu', 'tpu')
# Wall-clock budgets on a 2-core CPU, in minutes; each trains at `cpu`'s scale.
CPU_BUDGETS = {'cpu10': 10, 'cpu30': 30, 'cpu120': 120}
MULTISCALE_BUDGETS = ('cpu30', 'cpu120')
# The full recipe on an accelerator, in bfloat16: the train settings that
# differ from `full` (the module's docstring says why).
ACCELERATORS = {
    'gpu': dict(batch_size=256, log_every_steps=200,
                checkpoint_every_steps=4000),
    'tpu': dict(batch_size=1024, log_every_steps=100,
                checkpoint_every_steps=1000),
}


def scale(preset: str) -> str:
  """The scale a preset trains at: 'full' for the accelerator presets, which
  are the full recipe on a given device, 'cpu' for the CPU budgets, else
  the preset itself. Configs index their per-scale settings (head widths,
  crop scale, batch) by it."""
  if preset in ACCELERATORS:
    return 'full'
  return 'cpu' if preset in CPU_BUDGETS else preset


def get_config(preset: str = 'full') -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise InputError(f'Unknown config preset {preset!r}; allowed values: '
                     f'{list(PRESETS)} (e.g. --config=configs/vicreg.py:cpu).')
  config = ml_collections.ConfigDict()
  config.preset = preset
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = 'cifar10'
  config.data.data_dir = ''  # '' means $TFDS_DATA_DIR, else ~/tensorflow_datasets.
  # Off by default: offline, TFDS retries for minutes before giving up, and
  # we would rather fail at once with a clear message.
  config.data.download = False
  # 'validation': every evaluator scores on VALIDATION images carved from the
  # train split (fixed: the same for every run) and the run trains on the
  # rest; the test split is not read. For every choice (a sweep, a preset,
  # a readout): the test set is scored once per reported number.
  config.data.score_on = 'test'
  config.data.validation_size = 5000

  config.augment = augment.default_config()

  config.model = ml_collections.ConfigDict()
  config.model.backbone = 'resnet18'
  config.model.width = 1.0
  config.model.stem_strides = 1  # 2: the stem halves the resolution.
  config.model.dtype = 'auto'  # bfloat16 on GPU/TPU, float32 on CPU.
  config.model.projector_widths = (2048, 2048, 2048)
  config.model.projector_last_norm = False  # SimSiam: True.
  config.model.projector_last_bias = False  # Pretext classifiers: True.
  config.model.predictor_widths = ()  # BYOL/SimSiam: hidden, output.
  # A linear classifier on the detached encoder features of each image's
  # first view, trained on the labels by the same optimizer (as DeepMind's
  # BYOL and solo-learn do): accuracy while training, for one small matmul
  # per step. Off, so that the step is label-free unless asked.
  config.model.online_probe = False

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 256
  config.train.num_epochs = 1000.0
  config.train.log_every_steps = 100
  config.train.checkpoint_every_steps = 2000
  config.train.keep_checkpoints = 3
  # Minutes the run may take, all included, on the machine that runs it:
  # with `num_epochs` NaN, the run measures itself and trains the length
  # that fits (`ssljax.budget`). 0: no budget.
  config.train.budget_minutes = 0.0

  # solo-learn's CIFAR recipe for VICReg/Barlow Twins: LARS, lr 0.3 per 256
  # images, trust coefficient 0.02, weight decay 1e-4, 10 warmup epochs.
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'lars'
  config.optimizer.learning_rate = 0.3
  config.optimizer.weight_decay = 1e-4
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.02
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.warmup_epochs = 10.0
  config.optimizer.min_lr_ratio = 0.0
  config.optimizer.decay = 'cosine'

  # Evaluators (`ssljax/evaluators/<name>.py`), each with its settings; all
  # run after training, and every `every_epochs` epochs where that is > 0.
  config.evals = ml_collections.ConfigDict()
  config.evals.linear_probe = linear_probe.default_config()
  config.evals.knn = knn.default_config()
  config.evals.diagnostics = diagnostics.default_config()
  config.evals.online_probe = online_probe.default_config()  # If trained.
  config.eval_batch_size = 1000  # Images per call of the feature extraction.
  # Collapse diagnostics at every log and their warning thresholds;
  # num_images=0 turns them off.
  config.collapse = collapse.default_config()

  if scale(preset) == 'cpu':
    # Views at 24x24 and evaluation at the full 32x32: the 24x24 step is much
    # faster on CPU (experiments/results/cpu_presets.md), and a random-resized
    # crop already zooms objects in by ~1.3x, so objects keep about their
    # test-time size (Touvron et al. 2019, "Fixing the train-test resolution
    # discrepancy").
    config.augment.image_size = 24
    config.model.width = 0.25
    config.model.projector_widths = (1024, 1024, 1024)
    config.train.batch_size = 128
    config.train.num_epochs = 4.0
    config.train.log_every_steps = 20
    config.train.checkpoint_every_steps = 200
    config.optimizer.warmup_epochs = 0.3
    if preset in MULTISCALE_BUDGETS:
      config.evals.multiscale_probe = multiscale_probe.default_config()
    if preset in CPU_BUDGETS:
      # The length is chosen by the run, measured on its machine
      # (`ssljax.budget`). The probe and kNN run at each quarter of it
      # where the budget leaves room: an evaluation extracts the features
      # of 60,000 images, about a tenth of cpu10.
      config.train.budget_minutes = float(CPU_BUDGETS[preset])
      config.train.num_epochs = float('nan')
      if preset in MULTISCALE_BUDGETS:
        for name in ('linear_probe', 'knn'):
          config.evals[name].every_epochs = float('nan')
      config.train.log_every_steps = 50
      config.train.checkpoint_every_steps = 500
  elif preset == 'smoke':
    config.model.width = 0.125
    config.model.projector_widths = (256, 256, 256)
    config.train.batch_size = 64
    config.train.num_epochs = 0.05  # 39 steps.
    config.train.log_every_steps = 10
    config.train.checkpoint_every_steps = 20
    config.optimizer.warmup_epochs = 0.01
  elif preset in ACCELERATORS:
    config.model.dtype = 'bfloat16'
    config.train.update(ACCELERATORS[preset])
  return config


def use_pretext_recipe(config: ml_collections.ConfigDict, preset: str,
                       num_classes: int | None):
  """The shared recipe of the pretext tasks, RotNet's on CIFAR-10 (Gidaris et
  al. 2018): SGD with momentum 0.9, lr 0.1 per 128 images, weight decay 5e-4;
  a one-hidden-layer classifier head with a bias (`num_classes` outputs;
  None keeps the config's head, e.g. counting's count vector); the input
  transformation is the task's own, so the augmentation is one view of
  crop and flip only.

  The accelerator presets train the full recipe in bfloat16: `gpu` at its
  batch of 128; `tpu` at the global batch of 1024 (128 per core), its peak
  rate 8x gpu's by the optimizer's linear scaling (with which Goyal et al.
  2017 train SGD up to batch 8k), warmed up over 5 epochs rather than 1
  (their gradual warmup; 240 steps here), since no published pretext recipe
  trains at that batch."""
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 0.2
  config.optimizer.weight_decay = 5e-4
  config.model.projector_last_bias = True
  if num_classes is not None:
    hidden = {'full': 1024, 'cpu': 256, 'smoke': 64}[scale(preset)]
    config.model.projector_widths = (hidden, num_classes)
  config.augment.update(dict(
      crop_scale=(0.5, 1.0), flip_prob=(0.5,), jitter_prob=(0.0,),
      grayscale_prob=(0.0,), blur_prob=(0.0,), solarize_prob=(0.0,)))
  if scale(preset) == 'full':
    config.train.num_epochs = 200.0
    config.optimizer.warmup_epochs = 5.0 if preset == 'tpu' else 1.0
    if preset != 'tpu':
      config.train.batch_size = 128


# Settings added after stored runs were keyed on their configs
# (`ssljax.compare.runs.run_key`), at the value that computes what the runs
# computed before the setting existed: a config that has them at that value
# is keyed as if it had not.
ADDED_SINCE_KEYED = {'data.score_on': 'test', 'data.validation_size': 5000,
                     'train.budget_minutes': 0.0, 'optimizer.decay': 'cosine'}


def as_keyed(config: dict) -> dict:
  """`config` (nested, as results.json records it) without the settings of
  ADDED_SINCE_KEYED that are at their old value."""
  def prune(tree: dict, prefix: str) -> dict:
    return {k: prune(v, f'{prefix}{k}.') if isinstance(v, dict) else v
            for k, v in tree.items()
            if ADDED_SINCE_KEYED.get(prefix + k, object()) != v}
  return prune(config, '')


def flat(tree: dict, prefix: str = '') -> dict:
  """{'section.key': value} of a nested config dict (`config.to_dict()`, or
  a config.json read back)."""
  found = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      found.update(flat(value, f'{prefix}{key}.'))
    else:
      found[prefix + key] = value
  return found
