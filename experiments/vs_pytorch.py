"""ssljax's VICReg train step against a PyTorch user's loop, side by side.

Issue 13's target: the full-width ResNet-18 VICReg step at 1.0x or more of
the images/s of a PyTorch user's loop on the same CPU. The sides take turns in
one sitting, so that a drift of the host's speed falls on both; the ratio of
their median images/s, ssljax / PyTorch, is printed. The first step of each
phase is timed and shown but not counted, on both sides: it pays for the
switch (the memory the other side used is faulted back in; on ssljax's side
this cost 1-3 s), which someone who runs only one of them never pays. The
process re-executes itself with glibc's huge pages on, as ssljax's commands
do (`ssljax.hugepages`); PyTorch's caching allocator reuses its memory, so
they matter little to it.

  pip install torch torchvision  # not a dependency of ssljax
  python experiments/vs_pytorch.py
  python experiments/vs_pytorch.py --width=0.125 --batch_size=16 \
      --projector=64-64-64 --steps=2 --rounds=2  # checks the script

ssljax: the train step of `python -m ssljax.bench --config=configs/vicreg.py
--config.train.batch_size=128`, at this script's sizes (one jitted call: both
views augmented on the device, encoder, projector, loss, LARS update).
PyTorch, solo-learn style: eager; torchvision's ResNet-18 with the CIFAR stem
(channels x --width), the same projector, VICReg loss and augmentation recipe
(torchvision.v2, per image, in --workers DataLoader workers), SGD, BatchNorm
in training mode, in NCHW or channels_last, whichever is faster in the
warm-up. Both sides encode the two views as one batch. LARS and ssljax's
logged embedding statistics cost a little more than SGD, if anything in
PyTorch's favour. On a host that other processes load, OpenMP's spinning
barriers slow PyTorch's threads badly (a tiny step here: 3.2 s with 2 threads,
23 ms with 1, 80 ms with OMP_WAIT_POLICY=PASSIVE): measure on a quiet host.

Fairness about the workers: they are other processes, and persistent ones
would prefetch during the JAX phase, taking its CPU and doing PyTorch's work
off the clock. So each PyTorch phase starts a fresh iterator, waits for its
first batch off the clock, times --steps steps from there (each but the first
fetching its batch, the workers prefetching as in an epoch, which does not end
within a phase), then deletes the iterator, which joins the workers before the
JAX phase (asserted). The steps counted are each augmented by the workers
while the step before them ran, as in a user's epoch.

The workers fork from a 'forkserver' (--start_method): a plain fork copies a
process whose JAX threads run, which JAX warns can deadlock; the server never
starts JAX. bench.time_interleaved times a fixed call, where a PyTorch phase
needs an untimed start, so the phases are timed here.
"""

if __name__ == '__main__':  # As the commands run: see ssljax.hugepages.
  from ssljax import hugepages
  hugepages.reexec()

import json
import multiprocessing
import os
import runpy
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
import torchvision
from torchvision import tv_tensors
from torchvision.transforms import v2

from ssljax import data
from ssljax import hosts
from ssljax import step as step_lib

FLAGS = flags.FLAGS
flags.DEFINE_float('width', 1.0, 'Channel multiplier (1 = ResNet-18).')
flags.DEFINE_integer('batch_size', 128, 'Images per step (2 views each).')
flags.DEFINE_integer('image_size', 32, 'Side of the augmented views.')
flags.DEFINE_string('projector', '2048-2048-2048', 'Projector widths.')
flags.DEFINE_integer('steps', 4, 'Steps per timed phase (the first is not '
                     'counted: it pays for the switch).')
flags.DEFINE_integer('rounds', 3, 'Timed rounds (a JAX then a PyTorch phase); '
                     'the median step of all rounds is shown.')
flags.DEFINE_integer('workers', 2, "PyTorch's DataLoader workers.")
flags.DEFINE_integer('torch_threads', 0, "PyTorch's threads; 0: the cores.")
flags.DEFINE_enum('start_method', 'forkserver', ['fork', 'forkserver'],
                  'How the DataLoader workers start.')
flags.DEFINE_string('json_out', None, 'Also write the results here.')


def vicreg_config():
  """configs/vicreg.py's full preset at this run's sizes."""
  config = runpy.run_path(os.path.join(os.path.dirname(__file__), '..',
                                       'configs', 'vicreg.py'))['get_config']()
  config.model.width = FLAGS.width
  config.model.projector_widths = tuple(map(int, FLAGS.projector.split('-')))
  config.train.batch_size = FLAGS.batch_size
  config.augment.image_size = FLAGS.image_size
  return config


class ResNet18(torchvision.models.resnet.ResNet):
  """torchvision's ResNet-18 as solo-learn builds it for CIFAR (3x3 stride-1
  stem, no max-pool, no classifier), every channel count x `width`."""

  def __init__(self, width):
    self.base = max(1, round(64 * width))  # As ssljax rounds.
    super().__init__(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2])
    self.conv1 = nn.Conv2d(3, self.base, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(self.base)
    self.maxpool = nn.Identity()
    self.fc = nn.Identity()

  def _make_layer(self, block, planes, *args, **kwargs):
    if planes == 64:  # The first stage takes the stem's channels.
      self.inplanes = self.base
    return super()._make_layer(block, planes * self.base // 64, *args,
                               **kwargs)


def projector(features, widths):
  """ssljax's: (Linear-BN-ReLU) x (len - 1), then Linear; no biases."""
  layers = []
  for width in widths[:-1]:
    layers += [nn.Linear(features, width, bias=False), nn.BatchNorm1d(width),
               nn.ReLU(inplace=True)]
    features = width
  return nn.Sequential(*layers, nn.Linear(features, widths[-1], bias=False))


def vicreg_loss(z1, z2, cfg):
  """The published VICReg loss, as ssljax.methods.vicreg."""
  variance = lambda z: F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)).mean()

  def covariance(z):
    z = z - z.mean(dim=0)
    c = z.T @ z / (len(z) - 1)
    return (c.pow(2).sum() - c.diagonal().pow(2).sum()) / z.shape[1]

  return (cfg.sim_coeff * F.mse_loss(z1, z2)
          + cfg.std_coeff * (variance(z1) + variance(z2)) / 2
          + cfg.cov_coeff * (covariance(z1) + covariance(z2)))


class TwoViews(torch.utils.data.Dataset):
  """`length` pairs of views of uint8 [H, W, 3] images, reused in a cycle."""

  def __init__(self, images, length, augment):
    self.images, self.length, self.augment = images, length, augment

  def __len__(self):
    return self.length

  def __getitem__(self, i):
    image = tv_tensors.Image(
        torch.from_numpy(self.images[i % len(self.images)]).permute(2, 0, 1))
    return self.augment(image), self.augment(image)


def torch_augment(cfg, info):
  """ssljax's recipe (`config.augment`'s first view) in torchvision.v2."""
  return v2.Compose([
      v2.RandomResizedCrop(cfg.image_size, scale=tuple(cfg.crop_scale),
                           ratio=tuple(cfg.crop_ratio)),
      v2.RandomHorizontalFlip(cfg.flip_prob[0]),
      v2.RandomApply([v2.ColorJitter(cfg.brightness, cfg.contrast,
                                     cfg.saturation, cfg.hue)],
                     p=cfg.jitter_prob[0]),
      v2.RandomGrayscale(cfg.grayscale_prob[0]),
      v2.RandomSolarize(threshold=128, p=cfg.solarize_prob[0]),
      v2.ToDtype(torch.float32, scale=True),
      v2.Normalize(info.mean.tolist(), info.std.tolist())])


def torch_step(config, channels_last):
  """A PyTorch user's step on a batch (views 1, views 2), after one untimed
  step on random views."""
  layout = torch.channels_last if channels_last else torch.contiguous_format
  encoder = ResNet18(config.model.width)
  model = nn.Sequential(encoder, projector(8 * encoder.base,
                                           config.model.projector_widths))
  model = model.to(memory_format=layout).train()
  opt, batch = config.optimizer, config.train.batch_size
  optimizer = torch.optim.SGD(
      model.parameters(), lr=opt.learning_rate * batch / 256,
      momentum=opt.momentum, weight_decay=opt.weight_decay)

  def step(views):
    z1, z2 = model(torch.cat(views).contiguous(memory_format=layout)).chunk(2)
    loss = vicreg_loss(z1, z2, config.method)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

  size = config.augment.image_size
  step([torch.randn(batch, 3, size, size)] * 2)
  return step


def torch_phase(step, loader):
  """Seconds of each of --steps steps of a fresh iterator, from its first
  batch on; its workers are gone when this returns."""
  batches = iter(loader)
  views = next(batches)  # Off the clock: the workers start.
  seconds = []
  for i in range(FLAGS.steps):
    start = time.perf_counter()
    step(next(batches) if i else views)
    seconds.append(time.perf_counter() - start)
  del batches  # Joins the workers.
  assert not multiprocessing.active_children(), 'workers outlived the phase'
  return seconds


def main(argv):
  del argv
  torch.set_num_threads(FLAGS.torch_threads or os.cpu_count())
  config = vicreg_config()
  batch = config.train.batch_size
  host_images = np.random.default_rng(0).integers(
      0, 256, (8 * batch, 32, 32, 3), np.uint8)  # As bench: 8 steps an epoch.
  train_step = step_lib.build(config, hosts.data_mesh(), data.describe(
      host_images, np.arange(len(host_images)) % 10))
  images = train_step.device_split(host_images)
  perm = jax.device_put(jnp.arange(len(host_images)), train_step.replicated)
  state = [train_step.initial_state()]

  def jax_phase():  # Each step blocks: a step takes seconds, a sync
    seconds = []   # microseconds.
    for _ in range(FLAGS.steps):
      start = time.perf_counter()
      state[0] = train_step.jitted(state[0], images, perm, None)[0]
      jax.block_until_ready(state[0])
      seconds.append(time.perf_counter() - start)
    return seconds

  context = multiprocessing.get_context(FLAGS.start_method)
  if FLAGS.start_method == 'forkserver':  # Python 3.11's does not preload
    # __main__ (it reads a misnamed key): preload its imports, or each worker
    # imports them all again, for seconds.
    context.set_forkserver_preload(['jax', 'ssljax.step', 'torch',
                                    'torchvision.transforms.v2'])
  loader = torch.utils.data.DataLoader(
      TwoViews(host_images, (FLAGS.steps + 2 * FLAGS.workers) * batch,
               torch_augment(config.augment, train_step.train_info)),
      batch_size=batch, shuffle=True, drop_last=True,
      num_workers=FLAGS.workers, multiprocessing_context=context
      if FLAGS.workers else None)  # Workers not persistent: see above.
  jax_phase()  # Warm-up: compiles.
  steps = {name: torch_step(config, name == 'channels_last')
           for name in ('NCHW', 'channels_last')}
  warmup = {name: float(np.median(torch_phase(step, loader)))
            for name, step in steps.items()}
  layout = min(warmup, key=warmup.get)
  print('warm-up, pytorch ms/step: ' + ', '.join(
      f'{k} {1e3 * v:.0f}' for k, v in warmup.items()) + f'; keeping {layout}')
  step = steps[layout]
  times = {'ssljax': [], 'pytorch': []}
  for r in range(FLAGS.rounds):
    for side, phase in (('ssljax', jax_phase),
                        ('pytorch', lambda: torch_phase(step, loader))):
      times[side] += phase()
      print(f'round {r + 1} {side:<8} ms/step: ' + ' '.join(
          f'{1e3 * t:.0f}' for t in times[side][-FLAGS.steps:]), flush=True)
  # A phase's first step pays for the switch (the memory the other side
  # used is faulted back in, on JAX's side 1-3 s): a user who runs one of
  # them never pays it, so it is left out, on both sides.
  steady = {side: [t for i, t in enumerate(ts) if i % FLAGS.steps]
            for side, ts in times.items()}
  rate = {side: batch / float(np.median(ts)) for side, ts in steady.items()}
  ratio = rate['ssljax'] / rate['pytorch']
  print(f"ssljax {rate['ssljax']:.1f} images/s (median "
        f"{1e3 * batch / rate['ssljax']:.0f} ms/step), pytorch ({layout}, "
        f"{FLAGS.workers} workers) {rate['pytorch']:.1f} images/s "
        f"({1e3 * batch / rate['pytorch']:.0f} ms/step): ratio {ratio:.2f}")
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump(dict(
          ratio=ratio, images_per_second=rate, seconds_per_step=times,
          pytorch_layout=layout, warmup_seconds_per_step=warmup,
          torch_threads=torch.get_num_threads(), torch=torch.__version__,
          flags={f.name: f.value for f in FLAGS.get_flags_for_module(
              sys.argv[0])}), f, indent=2)


if __name__ == '__main__':
  app.run(main)
