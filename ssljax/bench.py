"""`python -m ssljax.bench --config=configs/<method>.py[:preset]`: where a
train step's time goes, measured on this machine.

After compilation and warm-up, each variant is timed over `--steps` calls,
blocking on the device result, `--repeats` times, the variants taking turns;
the table shows the median and the spread (min-max) of ms per call:
  train_step      the full jitted step (augment, encode, project, loss, update)
  augment         the method's inputs of the batch only (the two augmented
                  views; a pretext task's rotations, patches or tiles)
  encoder_fwd_bwd the encoder's forward and backward on those inputs only
  heads_loss_update  projector/predictor, loss and optimizer on fixed encoder
                  features (and fixed target-network outputs)
each a part of the run's own train step (`ssljax.step`), and, once, the
matrix-multiply ceiling (square float32 products, or the compute dtype on
GPU/TPU), feature extraction of --probe_examples images, the linear
probe and kNN on those features, and the collapse diagnostics of a log
(timed with the variants). Data are random uint8 images of the
dataset's shape: the timings do not depend on the content. Output: a table on
stdout, and JSON with --json_out.
"""

if __name__ == '__main__':  # Before JAX loads: see ssljax.hugepages.
  from ssljax import hugepages
  hugepages.reexec()

import dataclasses
import functools
import json
import resource
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import optax

from ssljax import data
from ssljax import evaluators
from ssljax import features as features_lib
from ssljax import hosts
from ssljax import models
from ssljax import step as step_lib
from ssljax import validate
from ssljax.evaluators import knn
from ssljax.evaluators import linear_probe

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
  `steps` calls each, so that a drift of the host's speed (which can be
  large within an hour, experiments/results/performance.md) falls on all of
  them alike and their ratios hold. One untimed round compiles and warms up:
  after a single warm-up call, the first timed repetition can still run
  several times slower than the rest."""
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
  """XLA's count of the function's FLOPs, from the program as traced and
  lowered for the CPU, whatever the device: after compilation XLA:GPU hands
  convolutions to cuDNN as custom calls, which its count leaves out (on an
  H200 it gave a ResNet-18's forward on a 32x32 image as 3.3 MFLOPs, of
  the 0.97 G its lowered program holds), and a GPU plugin counts nothing before
  compilation (`Lowered.cost_analysis` is None there, jax-ml/jax#22713). The
  lowered program's count is the same on every backend."""
  shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
  with jax.default_device(jax.devices('cpu')[0]):
    cost = jitted.lower(*shapes).cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get('flops', float('nan')))


def matmul_ceiling(dtype, size=None, repeats=5) -> float:
  """FLOP/s of a square matrix product, the roofline we compare against.
  2048 on a CPU; on an accelerator a product that small leaves it idle
  between kernels (on an H200 it measured 259 and 422 TFLOP/s in two
  runs), so 8192 there."""
  size = size or (2048 if jax.default_backend() == 'cpu' else 8192)
  b = jnp.ones((size, size), dtype)
  product = jax.jit(lambda x, b: ((x @ b) * (1 / size)).astype(dtype))
  median, _, _ = time_interleaved(
      {'matmul': (lambda x, b: (product(x, b), b), (b, b))}, 10,
      repeats)['matmul']
  return 2 * size ** 3 / median


def run(config, steps: int = 5, repeats: int = 5,
        probe_examples: int = 50000, matmul_size: int | None = None) -> dict:
  """The timings, FLOPs and memory of `config`'s step and each of its
  stages, of the probes on `probe_examples` and of a square product of
  `matmul_size` (`matmul_ceiling`'s default: None)."""
  batch = config.train.batch_size
  host_images = np.random.default_rng(0).integers(
      0, 256, (8 * batch, 32, 32, 3), np.uint8)  # An epoch of 8 steps.
  host_labels = np.arange(len(host_images)) % 10
  validate.check(config)
  mesh, info = hosts.data_mesh(), data.describe(host_images, host_labels)
  train_step = step_lib.build(config, mesh, info)
  images = train_step.device_split(host_images)
  labels = (None if train_step.model.classifier is None else
            train_step.device_split(host_labels))
  perm = jax.device_put(jnp.arange(len(host_images)), train_step.replicated)
  state = train_step.initial_state()
  results = {'config': config.method.name, 'batch_size': batch,
             'devices': [str(d) for d in jax.devices()]}
  variants = {}  # Timed together at the end, taking turns.

  # Full step, with its compile time.
  start = time.perf_counter()
  train_step.jitted.lower(state, images, perm, labels).compile()
  results['compile_seconds'] = time.perf_counter() - start

  # The method's inputs of the batch alone (two augmented views, rotations,
  # patches...); each call the next step's.
  inputs = jax.jit(lambda s, i, p: (s.replace(step=s.step + 1),
                                    train_step.inputs(s, i, p)))
  variants['augment'] = (lambda s, i, p: (inputs(s, i, p)[0], i, p),
                         (state, images, perm))
  x, extras = jax.jit(train_step.inputs)(state, images, perm)
  results['encoder_inputs'] = list(x.shape)

  # The encoder's forward + backward alone.
  def encoder_loss(params, x, step=train_step):
    h, _ = step.encoder_forward(params, state.batch_stats, x)
    return jnp.sum(h ** 2)

  encoder_step = jax.jit(lambda p, x: (jax.tree.map(
      lambda a, g: a - 1e-9 * g, p, jax.grad(encoder_loss)(p, x)), x))
  variants['encoder_fwd_bwd'] = (encoder_step, (state.params, x))
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  forward = jax.jit(lambda p, x: train_step.encoder_forward(p, state.batch_stats,
                                                      x)[0])
  # The direct convolution's FLOPs, whatever computes it: the same parameters
  # in the model built with XLA's convolution.
  direct = dataclasses.replace(train_step, model=train_step.model.clone(
      encoder=train_step.model.encoder.clone(
          convolution=jax.lax.conv_general_dilated)))
  results['encoder_flops_per_image'] = flops_of(
      jax.jit(lambda p, x: direct.model.apply(
          {**variables, 'params': p}, x, method=models.SSLModel.features)),
      state.params, x) / len(x)
  results['encoder_fwd_bwd_flops_per_image'] = flops_of(
      jax.jit(jax.grad(functools.partial(encoder_loss, step=direct))),
      state.params, x) / len(x)

  # Heads, loss and optimizer on fixed encoder features (and fixed targets).
  h = forward(state.params, x)
  extras = {**extras, **jax.jit(train_step.targets)(state, x)}

  @jax.jit
  def heads_update(params, opt_state, h):
    grads = jax.grad(lambda p: train_step.head_loss(
        p, state.batch_stats, state.method_state, h, extras)[0])(params)
    updates, opt_state = train_step.optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, h

  variants['heads_loss_update'] = (heads_update,
                                   (state.params, state.opt_state, h))
  results['heads_loss_update_flops'] = flops_of(
      heads_update, state.params, state.opt_state, h)

  # The roofline, feature extraction and the probe.
  dtype = models.compute_dtype(config.model.dtype)
  results['matmul_flops_per_second'] = matmul_ceiling(dtype, matmul_size)
  many = np.random.default_rng(1).integers(
      0, 256, (probe_examples, 32, 32, 3), np.uint8)
  encoder = features_lib.encoder(config, mesh, info)
  start = time.perf_counter()
  features = encoder.extract(state, many)
  results['feature_extraction_seconds'] = time.perf_counter() - start
  classes = np.random.default_rng(2).integers(0, 10, len(features))
  probe = linear_probe.make(config.evals.linear_probe, config).run(
      evaluators.Features(features, classes, features[:10000],
                          classes[:10000]))
  results['probe_seconds'] = probe['seconds']
  results['probe_examples'] = probe_examples
  results['feature_dim'] = int(features.shape[1])
  results['knn_seconds'] = knn.make(config.evals.knn, config).run(
      evaluators.Features(features, classes, features[:10000],
                          classes[:10000]))['seconds']

  # The collapse diagnostics the loop runs at every log.
  num_heldout = config.collapse.num_images
  if num_heldout:
    heldout = encoder.held_out_views(np.random.default_rng(3).integers(
        0, 256, (num_heldout, 32, 32, 3), np.uint8))

    def diagnose(s, images):
      jax.block_until_ready(encoder.jitted_collapse_measures(s, images))
      return s, images

    variants['diagnostics'] = (diagnose, (state, heldout))
  results['diagnostics_images'] = num_heldout

  # The step donates its state: it gets a copy of the one the others read.
  variants['train_step'] = (
      lambda s, i, p: (train_step.jitted(s, i, p, labels)[0], i, p),
      (jax.tree.map(jnp.copy, state), images, perm))
  results.update(time_interleaved(variants, steps, repeats))
  results['peak_host_memory_gb'] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 2**20
  stats = jax.devices()[0].memory_stats() or {}
  results['peak_device_memory_gb'] = stats.get('peak_bytes_in_use', 0) / 2**30
  return results


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
      f"compile {r['compile_seconds']:.1f} s; feature extraction of "
      f"{r['probe_examples']:,} images {r['feature_extraction_seconds']:.1f} "
      f"s; probe on {r['probe_examples']:,} x "
      f"{r['feature_dim']} {r['probe_seconds']:.1f} s; kNN of 10,000 "
      f"against {r['probe_examples']:,} {r['knn_seconds']:.1f} s",
      (f"collapse diagnostics of {r['diagnostics_images']} held-out images "
       f"{r['diagnostics'][0] * 1e3:.0f} ms per log = "
       f"{r['diagnostics'][0] / r['train_step'][0]:.2f} train steps"
       if r['diagnostics_images'] else 'collapse diagnostics off'),
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
