"""ResNet-18 training step, ssljax (jitted) against eager PyTorch, same device.

Both sides run the same network (CIFAR stem, BasicBlocks, `--width` x the
channels, BatchNorm in training mode), on the same number of inputs, through
forward, backward of the sum of squared pooled features, and an SGD update;
the time per image is the median of `--repeats` steps after warm-up. PyTorch
is timed in its default NCHW layout and in channels_last, and its faster is
kept: the comparison is against PyTorch at its best.

  pip install torch  # not a dependency of ssljax
  python experiments/jax_vs_torch_resnet18.py --width=0.25 --size=24
  python experiments/jax_vs_torch_resnet18.py --width=1 --size=32 --repeats=3
  python experiments/jax_vs_torch_resnet18.py --width=1 --size=32 \
      --inputs=512 --torch_device=cuda  # JAX takes its default device, the GPU
"""
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

from ssljax.models import resnet

FLAGS = flags.FLAGS
flags.DEFINE_float('width', 0.25, 'Channel multiplier (1 = ResNet-18).')
flags.DEFINE_integer('size', 24, 'Input height and width.')
flags.DEFINE_integer('inputs', 256, 'Inputs per step (2 views x 128).')
flags.DEFINE_integer('repeats', 7, 'Timed steps; the median is shown.')
flags.DEFINE_string('torch_device', 'cpu',
                    "PyTorch's device: 'cpu' or 'cuda'.")


class TorchBlock(nn.Module):
  """BasicBlock as ssljax's: conv-BN-ReLU, conv-BN, projected shortcut."""

  def __init__(self, cin, cout, stride):
    super().__init__()
    self.body = nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout))
    self.shortcut = nn.Identity()
    if stride != 1 or cin != cout:
      self.shortcut = nn.Sequential(
          nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

  def forward(self, x):
    return torch.relu(self.body(x) + self.shortcut(x))


def torch_resnet18(width):
  base = max(1, round(64 * width))
  layers = [nn.Conv2d(3, base, 3, 1, 1, bias=False), nn.BatchNorm2d(base),
            nn.ReLU(inplace=True)]
  cin = base
  for stage in range(4):
    for b in range(2):
      cout = base * 2**stage
      layers.append(TorchBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
      cin = cout
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
  return nn.Sequential(*layers)


def median_seconds(step, repeats):
  step()
  step()  # Warm-up (and, for JAX, compilation).
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def torch_step_seconds(channels_last):
  device = torch.device(FLAGS.torch_device)
  model = torch_resnet18(FLAGS.width).to(device)
  x = torch.randn(FLAGS.inputs, 3, FLAGS.size, FLAGS.size, device=device)
  if channels_last:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  optimizer = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)

  def step():
    optimizer.zero_grad(set_to_none=True)
    loss = model(x).pow(2).sum()
    loss.backward()
    optimizer.step()
    if device.type == 'cuda':
      torch.cuda.synchronize()  # CUDA calls return before the work is done.

  return median_seconds(step, FLAGS.repeats)


def jax_step_seconds():
  model = resnet.BACKBONES['resnet18'](width=FLAGS.width)
  x = jax.random.normal(jax.random.PRNGKey(0),
                        (FLAGS.inputs, FLAGS.size, FLAGS.size, 3))
  variables = model.init(jax.random.PRNGKey(1), x, train=True)

  def loss(params, batch_stats):
    h, updates = model.apply({'params': params, 'batch_stats': batch_stats},
                             x, train=True, mutable=['batch_stats'])
    return jnp.sum(h * h), updates['batch_stats']

  @jax.jit
  def step(params, momentum, batch_stats):
    grads, batch_stats = jax.grad(loss, has_aux=True)(params, batch_stats)
    momentum = jax.tree.map(lambda m, g: 0.9 * m + g, momentum, grads)
    params = jax.tree.map(lambda p, m: p - 1e-9 * m, params, momentum)
    return params, momentum, batch_stats

  carry = [variables['params'], jax.tree.map(jnp.zeros_like,
                                             variables['params']),
           variables['batch_stats']]

  def run():
    carry[:] = jax.block_until_ready(step(*carry))

  return median_seconds(run, FLAGS.repeats)


def main(argv):
  del argv
  print(f'ResNet-18 width {FLAGS.width}, {FLAGS.inputs} inputs of '
        f'{FLAGS.size}x{FLAGS.size}, forward+backward+SGD; torch '
        f'{torch.__version__} ({FLAGS.torch_device}, '
        f'{torch.get_num_threads()} threads), jax '
        f'{jax.__version__} ({jax.devices()[0].platform})')
  results = {'jax': jax_step_seconds(),
             'torch NCHW': torch_step_seconds(channels_last=False),
             'torch channels_last': torch_step_seconds(channels_last=True)}
  for name, seconds in results.items():
    print(f'  {name:<20}{1e3 * seconds:9.1f} ms/step '
          f'{FLAGS.inputs / seconds:8.0f} images/s')
  best_torch = min(results['torch NCHW'], results['torch channels_last'])
  print(f'jax time / best torch time: {results["jax"] / best_torch:.2f} '
        '(< 1: jax is faster)')


if __name__ == '__main__':
  app.run(main)
