"""A config's full train step, and its encoder's forward+backward, with each
of `models.conv`'s formulations switched off, timed in turns in one process.

  python experiments/conv_step_ab.py --config=configs/vicreg.py:cpu
  python experiments/conv_step_ab.py --config=configs/vicreg.py \
      --config.train.batch_size=128 --steps=1 --repeats=3

The variants:
  xla       XLA's convolutions throughout (before issue 5's change 1)
  taps      XLA's, with the kernel gradient by taps where `taps_are_faster`
            (before issue 13)
  winograd  and Winograd where `winograd_plan` says so
  patches   and the patch products where `patches_chunk` says so: all of
            `models.conv` as it is
Each is its own train step (`ssljax.step`), its encoder built with
`conv.using(...)` of the variant's formulations, then timed with
`ssljax.bench.time_interleaved`: the variants take turns, so the host's
drift (10-30% within an hour here) falls on all alike, and the ratios
hold. Data are random uint8 images, as in `ssljax.bench`.
"""

if __name__ == '__main__':  # As the commands run: see ssljax.hugepages.
  from ssljax import hugepages
  hugepages.reexec()

import dataclasses

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from ssljax import bench
from ssljax import data
from ssljax import hosts
from ssljax import step as step_lib
from ssljax.models import conv

FLAGS = flags.FLAGS  # --config, --steps and --repeats are ssljax.bench's.
flags.DEFINE_list('variants', ['taps', 'patches'],
                  'Of xla, taps, winograd, patches.')

VARIANTS = {  # The formulations of `models.conv` each variant switches on.
    'xla': (), 'taps': ('taps',), 'winograd': ('taps', 'winograd'),
    'patches': ('taps', 'winograd', 'patches')}


def compiled_variants(config, name):
  """The train step and the encoder's forward+backward of `config`, its
  encoder computing with variant `name`'s formulations, compiled."""
  batch = config.train.batch_size
  host_images = np.random.default_rng(0).integers(
      0, 256, (8 * batch, 32, 32, 3), np.uint8)
  pipe = step_lib.build(config, hosts.data_mesh(), data.describe(
      host_images, np.arange(len(host_images)) % 10))
  pipe = dataclasses.replace(pipe, model=pipe.model.clone(
      encoder=pipe.model.encoder.clone(
          convolution=conv.using(*VARIANTS[name]))))
  images = pipe.device_split(host_images)
  perm = jax.device_put(jnp.arange(len(host_images)), pipe.replicated)
  state = pipe.initial_state()
  x, _ = jax.jit(pipe.inputs)(state, images, perm)

  def encoder_loss(params, x):
    h, _ = pipe.encoder_forward(params, state.batch_stats, x)
    return jnp.sum(h ** 2)

  encoder = jax.jit(lambda p, x: (jax.tree.map(
      lambda a, g: a - 1e-9 * g, p, jax.grad(encoder_loss)(p, x)), x))
  step = pipe.jitted.lower(state, images, perm, None).compile()
  encoder = encoder.lower(state.params, x).compile()
  return {  # The step donates its state: it gets a copy.
      f'{name} train_step': (lambda s, i, p: (step(s, i, p, None)[0], i, p),
                             (jax.tree.map(jnp.copy, state), images, perm)),
      f'{name} encoder_fwd_bwd': (encoder, (state.params, x))}


def main(argv):
  del argv
  config = FLAGS.config
  config.model.online_probe = False  # The step without labels.
  variants = {}
  for name in FLAGS.variants:
    variants.update(compiled_variants(config, name))
  times = bench.time_interleaved(variants, FLAGS.steps, FLAGS.repeats)
  base = FLAGS.variants[0]
  batch = config.train.batch_size
  print(f'{config.method.name}, batch {batch}, width {config.model.width}, '
        f'median of {FLAGS.repeats} x {FLAGS.steps} calls')
  for part in ('train_step', 'encoder_fwd_bwd'):
    for name in FLAGS.variants:
      median, low, high = times[f'{name} {part}']
      ratio = times[f'{base} {part}'][0] / median
      print(f'  {part:<16} {name:<9} {1e3 * median:9.1f} ms '
            f'({1e3 * low:.1f}-{1e3 * high:.1f})  {ratio:.2f}x {base}'
            + (f'  {batch / median:.1f} images/s' if part == 'train_step'
               else ''))


if __name__ == '__main__':
  app.run(main)
