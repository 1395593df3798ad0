"""`python -m ssljax.bench --config=configs/<method>.py[:preset]`: where a
train step's time goes, measured on this machine.

After compilation and warm-up, each variant is timed over `--steps` calls,
blocking on the device result, `--repeats` times, the variants taking turns;
the table shows the median and the spread (min-max) of ms per call:
  train_step      the full jitted step (augment, encode, project, loss, update)
  augment         the method's inputs of the batch only (the two augmented
                  views; a pretext task's rotations, patches or tiles)
  encoder_fwd_bwd the encoder's forward and backward on those inputs only
  heads_loss_update  projector/predictor, loss and optimizer on fixed features
and, once, the matrix-multiply ceiling (square float32 products, or the
compute dtype on GPU/TPU), feature extraction of 50,000 images and the linear
probe on a 50,000 x D feature set. Data are random uint8 images of the
dataset's shape: the timings do not depend on the content. Output: a table on
stdout, and JSON with --json_out.
"""
import functools
import json
import resource
import time

from absl import app
from absl import flags
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import optax

from ssljax import data
from ssljax import evaluate
from ssljax import methods
from ssljax import models
from ssljax import optim
from ssljax import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (and preset).')
flags.DEFINE_integer('steps', 5, 'Calls per timed repetition.')
flags.DEFINE_integer('repeats', 5, 'Timed repetitions; the median is shown.')
flags.DEFINE_integer('probe_examples', 50000, 'Rows of the probe benchmark.')
flags.DEFINE_string('json_out', None, 'Also write the results here.')
flags.mark_flags_as_required(['config'])


def time_interleaved(variants: dict, steps: int, repeats: int) -> dict:
  """{name: (median, min, max) seconds per call} of `variants`, {name: (fn,
  args)}. `fn` returns its next arguments, so that calls chain (and a donated
  train state is never reused). The variants take turns, one repetition of
  `steps` calls each, so that a drift of the host's speed (10-30% within an
  hour on our CPU) falls on all of them alike and their ratios hold. One
  untimed round compiles and warms up: after a single warm-up call, the first
  timed repetition still ran up to 4x slower than the rest."""
  args = {name: a for name, (_, a) in variants.items()}
  per_call = {name: [] for name in variants}
  for _ in range(repeats + 1):
    for name, (fn, _) in variants.items():
      start = time.perf_counter()
      for _ in range(steps):
        args[name] = fn(*args[name])
      jax.block_until_ready(args[name])
      per_call[name].append((time.perf_counter() - start) / steps)
  return {name: (float(np.median(t[1:])), float(min(t[1:])), float(max(t[1:])))
          for name, t in per_call.items()}


def flops_of(jitted, *args) -> float:
  cost = jitted.lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get('flops', float('nan')))


def matmul_ceiling(dtype, size=2048, repeats=5) -> float:
  """FLOP/s of a square matrix product, the roofline we compare against."""
  a = jnp.ones((size, size), dtype)
  product = jax.jit(lambda x: (x @ a).astype(dtype) * 1e-3)
  median, _, _ = time_interleaved(
      {'matmul': (lambda x: (product(x),), (a,))}, 10, repeats)['matmul']
  return 2 * size ** 3 / median


def run(config, steps: int = 5, repeats: int = 5,
        probe_examples: int = 50000) -> dict:
  mesh = Mesh(np.array(jax.devices()), ('data',))
  replicated = NamedSharding(mesh, P())
  batch = config.train.batch_size
  method, model = methods.get(config.method.name), models.create_model(config)
  steps_per_epoch = 8
  tx, schedule = optim.create_optimizer(config, steps_per_epoch)
  images = jax.device_put(np.random.default_rng(0).integers(
      0, 256, (steps_per_epoch * batch, 32, 32, 3), np.uint8), replicated)
  perm = jax.device_put(jnp.arange(steps_per_epoch * batch), replicated)
  state = jax.device_put(train.create_train_state(config, model, tx, method),
                         replicated)
  results = {'config': config.method.name, 'batch_size': batch,
             'devices': [str(d) for d in jax.devices()]}
  variants = {}  # Timed together at the end, taking turns.

  # Full step, with its compile time.
  step = train.jit_train_step(config, model, tx, schedule, method,
                              steps_per_epoch, mesh)
  start = time.perf_counter()
  step.lower(state, images, perm).compile()
  results['compile_seconds'] = time.perf_counter() - start

  # The method's input transformation alone (two augmented views, rotations,
  # patches...).
  key = jax.random.PRNGKey(0)
  views = jax.jit(lambda k, x: (jax.random.fold_in(k, 1), method.views(
      k, x, state.method_state, config)))
  variants['augment'] = (lambda k, x: (views(k, x)[0], x),
                         (key, images[:batch]))

  # Encoder forward + backward alone, on inputs shaped as the method's.
  x_shape, labels = jax.eval_shape(views, key, images[:batch])[1]
  results['encoder_inputs'] = list(x_shape.shape)
  x = data.standardize(jax.random.uniform(key, x_shape.shape))
  labels = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), labels)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}

  def encoder_loss(params, x):
    h, _ = model.apply({**variables, 'params': params}, x, train=True,
                       mutable=['batch_stats'], method=_encode)
    return jnp.sum(h ** 2)

  encoder_grad = jax.jit(jax.grad(encoder_loss))
  encoder_step = jax.jit(lambda p, x: (jax.tree.map(
      lambda a, g: a - 1e-9 * g, p, jax.grad(encoder_loss)(p, x)), x))
  variants['encoder_fwd_bwd'] = (encoder_step, (state.params, x))
  forward = jax.jit(lambda p, x: model.apply({**variables, 'params': p}, x,
                                             method=models.SSLModel.features))
  results['encoder_flops_per_image'] = flops_of(forward, state.params, x) / (
      len(x))
  results['encoder_fwd_bwd_flops_per_image'] = flops_of(
      encoder_grad, state.params, x) / len(x)

  # Heads, loss and optimizer on fixed encoder features.
  h = models.group_features(forward(state.params, x), method.head_groups)

  def apply_heads(params, h, fn):
    out, _ = model.apply({**variables, 'params': params}, h, train=True,
                         mutable=['batch_stats'], method=fn)
    return out

  def heads_loss(params, h):
    outputs = {**method.outputs(*apply_heads(params, h, _heads)), **labels}
    outputs.update(jax.lax.stop_gradient(method.targets(
        state.method_state, functools.partial(apply_heads, fn=_projector), h,
        config.method)))
    return method.loss(outputs, state.method_state, config.method)[0]

  @jax.jit
  def heads_update(params, opt_state, h):
    grads = jax.grad(heads_loss)(params, h)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, h

  variants['heads_loss_update'] = (heads_update,
                                   (state.params, state.opt_state, h))
  results['heads_loss_update_flops'] = flops_of(
      heads_update, state.params, state.opt_state, h)

  # The roofline, feature extraction and the probe.
  dtype = models.compute_dtype(config.model.dtype)
  results['matmul_flops_per_second'] = matmul_ceiling(dtype)
  encode = jax.jit(lambda v, i: model.apply(
      v, data.standardize(i.astype(jnp.float32) / 255.0),
      method=models.SSLModel.features))
  many = np.random.default_rng(1).integers(
      0, 256, (probe_examples, 32, 32, 3), np.uint8)
  start = time.perf_counter()
  features = evaluate.extract_features(functools.partial(encode, variables),
                                       many, config.probe.batch_size)
  results['feature_extraction_seconds'] = time.perf_counter() - start
  classes = np.random.default_rng(2).integers(0, 10, len(features))
  probe = evaluate.linear_probe(
      features, classes, features[:10000], classes[:10000],
      l2_grid=tuple(config.probe.l2_grid), num_steps=config.probe.num_steps)
  results['probe_seconds'] = probe['seconds']
  results['feature_dim'] = int(features.shape[1])

  # The step donates its state: it gets a copy of the one the others read.
  variants['train_step'] = (lambda s, i, p: (step(s, i, p)[0], i, p),
                            (jax.tree.map(jnp.copy, state), images, perm))
  results.update(time_interleaved(variants, steps, repeats))
  results['peak_host_memory_gb'] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 2**20
  stats = jax.devices()[0].memory_stats() or {}
  results['peak_device_memory_gb'] = stats.get('peak_bytes_in_use', 0) / 2**30
  return results


def _encode(module, x, train):  # pylint: disable=redefined-outer-name
  return module.encoder(x, train)


def _projector(module, h, train):  # pylint: disable=redefined-outer-name
  return module.projector(h, train)


def _heads(module, h, train):  # pylint: disable=redefined-outer-name
  z = module.projector(h, train)
  return z, None if module.predictor is None else module.predictor(z, train)


def report(r: dict) -> str:
  step_ms = r['train_step'][0] * 1e3
  images = r['batch_size'] / r['train_step'][0]
  lines = [f"{r['config']}, batch {r['batch_size']}, {r['devices'][0]} "
           f"x{len(r['devices'])}",
           f"{'variant':<20}{'ms/call':>10}{'min-max':>16}{'x encoder':>11}"]
  for name in ('train_step', 'augment', 'encoder_fwd_bwd', 'heads_loss_update'):
    median, low, high = (v * 1e3 for v in r[name])
    ratio = median / (r['encoder_fwd_bwd'][0] * 1e3)
    lines.append(f'{name:<20}{median:>10.1f}{f"{low:.1f}-{high:.1f}":>16}'
                 f'{ratio:>11.2f}')
  inputs = r['encoder_inputs'][0]
  encoder_flops = r['encoder_fwd_bwd_flops_per_image'] * inputs
  achieved = encoder_flops / r['encoder_fwd_bwd'][0]
  size = 'x'.join(map(str, r['encoder_inputs'][1:3]))
  lines += [
      f'images/s {images:.0f}, encoder inputs/s '
      f"{inputs / r['train_step'][0]:.0f} ({step_ms:.1f} ms per step; "
      f'{inputs} inputs of {size} per step)',
      f"encoder FLOPs/input: forward {r['encoder_flops_per_image'] / 1e6:.1f} M,"
      f" forward+backward {r['encoder_fwd_bwd_flops_per_image'] / 1e6:.1f} M;"
      f" heads + loss + update {r['heads_loss_update_flops'] / 1e9:.2f} G per "
      f"step = {r['heads_loss_update_flops'] / encoder_flops:.0%} of the "
      "encoder's forward+backward",
      f'encoder forward+backward: {achieved / 1e9:.1f} GFLOP/s = '
      f"{achieved / r['matmul_flops_per_second']:.0%} of the matmul ceiling "
      f"({r['matmul_flops_per_second'] / 1e9:.0f} GFLOP/s)",
      f"compile {r['compile_seconds']:.1f} s; feature extraction of 50,000 "
      f"images {r['feature_extraction_seconds']:.1f} s; probe on 50,000 x "
      f"{r['feature_dim']} {r['probe_seconds']:.1f} s",
      f"peak host memory {r['peak_host_memory_gb']:.2f} GB, peak device "
      f"memory {r['peak_device_memory_gb']:.2f} GB (0: not reported)"]
  return '\n'.join(lines)


def main(argv):
  del argv
  results = run(FLAGS.config, FLAGS.steps, FLAGS.repeats,
                FLAGS.probe_examples)
  print(report(results))
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  app.run(main)
