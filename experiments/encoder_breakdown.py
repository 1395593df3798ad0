"""Where the encoder's forward+backward time goes: its convolutions, its
BatchNorms, and everything else (ReLUs, residual adds, pooling, and what the
whole graph loses or gains over its parts).

Each convolution and each BatchNorm of the config's encoder is recorded at
its own input shape (by intercepting the Flax modules on one forward pass)
and timed alone, forward+backward, jitted, as the train step runs it; the sum
over layers is set against the whole encoder's forward+backward.

  python experiments/encoder_breakdown.py --config=configs/vicreg.py:cpu

The number of inputs is the method's: two views of the batch.
"""
import collections
import functools

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_flags

from ssljax import models
from timing import median_ms

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (and preset).')
flags.DEFINE_integer('repeats', 7, 'Timed calls; the median is shown.')


def record_layers(encoder, variables, x):
  """[(kind, module, input shape)] of every Conv and BatchNorm, in order."""
  layers = []

  def interceptor(next_fun, args, kwargs, context):
    if context.method_name == '__call__' and isinstance(
        context.module, (nn.Conv, nn.BatchNorm)):
      layers.append((type(context.module).__name__, context.module.clone(
          parent=None), args[0].shape))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    encoder.apply(variables, x, train=True, mutable=['batch_stats'])
  return layers


def layer_fwd_bwd(module, shape, first, repeats):
  """ms of one layer's forward+backward: gradients of its parameters and,
  except for the first layer (the images need none), of its input."""
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  variables = module.init(jax.random.PRNGKey(1), x)
  apply = (functools.partial(module.apply, mutable=['batch_stats'])
           if isinstance(module, nn.BatchNorm) else module.apply)

  def loss(params, x):
    out = apply({**variables, 'params': params}, x)
    out = out[0] if isinstance(out, tuple) else out
    return jnp.sum(out * out)

  grad = jax.jit(jax.grad(loss, argnums=0 if first else (0, 1)))
  return median_ms(grad, variables['params'], x, repeats=repeats)


def main(argv):
  del argv
  config = FLAGS.config
  encoder = models.create_model(config).encoder
  size = config.augment.get('image_size', 32)
  x = jax.random.normal(jax.random.PRNGKey(0),
                        (2 * config.train.batch_size, size, size, 3))
  variables = encoder.init(jax.random.PRNGKey(1), x, train=True)

  def encoder_loss(params, x):
    h, _ = encoder.apply({**variables, 'params': params}, x, train=True,
                         mutable=['batch_stats'])
    return jnp.sum(h * h)

  whole = median_ms(jax.jit(jax.grad(encoder_loss)), variables['params'], x,
                    repeats=FLAGS.repeats)
  totals = collections.Counter()
  rows = collections.Counter()
  counts = collections.Counter()
  for i, (kind, module, shape) in enumerate(record_layers(encoder, variables,
                                                          x)):
    ms = layer_fwd_bwd(module, shape, first=i == 0, repeats=FLAGS.repeats)
    totals[kind] += ms
    detail = (f'{kind} {"x".join(map(str, shape))}'
              + (f' k{module.kernel_size[0]} s{module.strides or 1}'
                 f' ->{module.features}' if kind == 'Conv' else ''))
    rows[detail] += ms
    counts[detail] += 1
  print(f'inputs {x.shape}; forward+backward, ms (median of {FLAGS.repeats})')
  for detail, ms in rows.items():
    print(f'  {detail:<40} x{counts[detail]}{ms:8.1f}')
  parts = sum(totals.values())
  print(f"convolutions {totals['Conv']:.1f} ms ({totals['Conv'] / whole:.0%})"
        f", batch norms {totals['BatchNorm']:.1f} ms "
        f"({totals['BatchNorm'] / whole:.0%}), the rest {whole - parts:.1f} ms "
        f'({(whole - parts) / whole:.0%}); whole encoder {whole:.1f} ms')


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main)
