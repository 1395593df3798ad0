"""Self-supervised training: one jitted step from uint8 batch to updated state.

`train_step` does augment -> encode -> project -> loss -> optimizer update over
a global batch sharded on a `Mesh` of all devices. It never asks which method it
runs: the method's loss and state come from `ssljax.methods`. `TrainState` is
the only thing checkpointed, and restoring it restores everything, the data
order and augmentation randomness included, because both are pure functions of
`state.rng` and `state.step`.
"""
import functools
import json
import os
import time
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import flax
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from ssljax import data
from ssljax import evaluate
from ssljax import methods
from ssljax import models
from ssljax import optim
from ssljax.errors import InputError


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  method_state: Any  # e.g. TiCo's running covariance C.
  rng: jax.Array  # Root key; per-step keys are folded in from `step`.


class TrainingDiverged(InputError):
  """The loss is no longer finite (usually too high a learning rate)."""


def _streams(rng: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Independent (augmentation, data order) key streams of a run."""
  aug_key, data_key = jax.random.split(rng)
  return aug_key, data_key


def validate_config(config: ml_collections.ConfigDict, num_devices: int):
  """Fails at start, naming the bad key and the allowed values."""
  methods.get(config.method.name)
  models.create_model(config)
  optim.create_optimizer(config, steps_per_epoch=1)
  for key in ('train.batch_size', 'probe.batch_size'):
    section, name = key.split('.')
    value = config[section][name]
    if value <= 0 or value % num_devices:
      raise InputError(
          f'config.{key}={value} must be a positive multiple of the device '
          f'count ({num_devices}), so that every device gets an equal shard.')


def create_train_state(config: ml_collections.ConfigDict, model, tx,
                       method: methods.Method) -> TrainState:
  rng, init_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  # The encoder pools globally, so any input size builds the same parameters;
  # the head's input width depends on how many parts it sees at once.
  size = config.augment.image_size
  variables = jax.jit(functools.partial(
      model.init, train=False, head_groups=method.head_groups))(
          init_rng, jnp.zeros((2 * method.head_groups, size, size, 3)))
  params = variables['params']
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      batch_stats=variables['batch_stats'], opt_state=tx.init(params),
      method_state=method.init_state(config.method, params,
                                     config.model.projector_widths[-1]),
      rng=rng)


def train_step(state: TrainState, images: jax.Array, perm: jax.Array, *,
               model, tx: optax.GradientTransformation, schedule,
               method: methods.Method, config: ml_collections.ConfigDict,
               steps_per_epoch: int, mesh: Mesh) -> tuple[TrainState, dict]:
  """One SGD step on the batch `perm[i*B:(i+1)*B]` of the device-resident split.

  Both views go through the network as one batch of 2N, so BatchNorm
  statistics are over both views of the global batch (as in SimCLR), and the
  result does not depend on the device count.
  """
  batch_size = config.train.batch_size
  start = (state.step % steps_per_epoch) * batch_size
  idx = jax.lax.dynamic_slice_in_dim(perm, start, batch_size)
  idx = jax.lax.with_sharding_constraint(idx, NamedSharding(mesh, P('data')))
  aug_key, _ = _streams(state.rng)
  x, labels = method.views(jax.random.fold_in(aug_key, state.step),
                           images[idx], state.method_state, config)
  x = data.standardize(x)

  def project(params, x):
    z, _ = model.apply({'params': params, 'batch_stats': state.batch_stats}, x,
                       train=True, mutable=['batch_stats'],
                       method=models.SSLModel.project)
    return z

  targets = jax.lax.stop_gradient(
      method.targets(state.method_state, project, x, config.method))

  def loss_fn(params):
    (_, z, p), updates = model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, x, train=True,
        head_groups=method.head_groups, mutable=['batch_stats'])
    outputs = method.outputs(z, p)
    loss, terms, method_state = method.loss({**outputs, **labels, **targets},
                                            state.method_state, config.method)
    return loss, (terms, method_state, updates['batch_stats'], z)

  (loss, (terms, method_state, batch_stats, z)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  # The head's output of the first view (or of the first block of inputs).
  z1 = z[:batch_size].astype(jnp.float32)
  z1n = z1 / jnp.linalg.norm(z1, axis=1, keepdims=True)
  metrics = {
      'loss': loss,
      **terms,
      'learning_rate': schedule(state.step),
      'grad_norm': optax.tree.norm(grads),
      # Collapse diagnostics: 0 means collapse; for the L2-normalised
      # embedding 1/sqrt(D) is the value of a perfectly spread one.
      'embedding_std': jnp.mean(jnp.std(z1, axis=0)),
      'normalized_embedding_std': jnp.mean(jnp.std(z1n, axis=0)),
  }
  params = optax.apply_updates(state.params, updates)
  total_steps = max(optim.total_train_steps(config, steps_per_epoch), 1)
  method_state = method.after_update(method_state, params,
                                     state.step / total_steps, config.method)
  new_state = state.replace(
      step=state.step + 1, params=params, batch_stats=batch_stats,
      opt_state=opt_state, method_state=method_state)
  return new_state, metrics


def jit_train_step(config, model, tx, schedule, method, steps_per_epoch,
                   mesh):
  """`train_step` jitted once for this run: state replicated and donated."""
  replicated = NamedSharding(mesh, P())
  return jax.jit(
      functools.partial(train_step, model=model, tx=tx, schedule=schedule,
                        method=method, config=config,
                        steps_per_epoch=steps_per_epoch, mesh=mesh),
      out_shardings=(replicated, replicated), donate_argnums=(0,))


def _encoder_fn(model):
  """uint8 images -> encoder features (BatchNorm in inference mode)."""
  def encode(variables, images):
    x = data.standardize(images.astype(jnp.float32) / 255.0)
    return model.apply(variables, x, method=models.SSLModel.features)
  return encode


def run_probe(model, state: TrainState, splits: dict, config, mesh) -> dict:
  """Linear-probe top-1 accuracy of the encoder on the full test split."""
  start = time.time()
  encode = jax.jit(_encoder_fn(model), in_shardings=(
      NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))))
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  feats = {name: evaluate.extract_features(functools.partial(encode, variables),
                                           images, config.probe.batch_size)
           for name, (images, _) in splits.items()}
  extract_seconds = time.time() - start
  result = evaluate.linear_probe(
      feats['train'], splits['train'][1], feats['test'], splits['test'][1],
      l2_grid=tuple(config.probe.l2_grid), num_steps=config.probe.num_steps,
      seed=config.seed)
  result['feature_seconds'] = extract_seconds
  result['feature_dim'] = int(feats['train'].shape[1])
  return result


def _view_grid(method, state, config, images: np.ndarray,
               num: int = 8) -> np.ndarray:
  """[1, num*S, (1+K)*S, 3]: each row an original image and the K network
  inputs the method makes of it (two views, four rotations, nine tiles...)."""
  x, _ = jax.jit(lambda k, i, s: method.views(k, i, s, config))(
      jax.random.PRNGKey(config.seed), images[:num], state.method_state)
  size = x.shape[1]
  parts = np.asarray(x).reshape(-1, num, size, size, 3)  # [K, num, S, S, 3]
  original = jax.image.resize(images[:num] / 255.0, parts.shape[1:], 'linear')
  rows = np.concatenate([original, *parts], axis=2)  # [num, S, (1+K)S, 3]
  return rows.reshape(1, num * size, -1, 3)


def _flat_hparams(config: ml_collections.ConfigDict) -> dict:
  flat = {}
  def visit(prefix, node):
    for key, value in node.items():
      if isinstance(value, dict):
        visit(f'{prefix}{key}.', value)
      else:
        flat[prefix + key] = (value if isinstance(value, (int, float, str, bool))
                              else str(value))
  visit('', config.to_dict())
  return flat


def _restore_or_init(manager, state: TrainState) -> TrainState:
  step = manager.latest_step()
  if step is None:
    return state
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  try:
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(
        f'The checkpoint at {manager.directory}/{step} could not be restored '
        f'({type(e).__name__}: {e}). It is damaged or was written with a '
        'different method/model config. Nothing was changed: resume with the '
        'config the run started with (saved as config.json in the workdir), or '
        'move the checkpoint folder aside to start afresh.') from None
  logging.info('Resumed from step %d', step)
  print(f'Resuming from the checkpoint at step {step}.', flush=True)
  return restored


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains, checkpoints, logs to TensorBoard and writes results.json."""
  start_time = time.time()
  mesh = Mesh(np.array(jax.devices()), ('data',))
  replicated = NamedSharding(mesh, P())
  validate_config(config, mesh.size)
  method = methods.get(config.method.name)
  model = models.create_model(config)

  data_dir = config.data.data_dir or None
  splits = {split: data.load_split(config.data.name, split, data_dir,
                                   config.data.download)
            for split in ('train', 'test')}
  train_images = splits['train'][0]
  steps_per_epoch = len(train_images) // config.train.batch_size
  if steps_per_epoch == 0:
    raise InputError(f'config.train.batch_size={config.train.batch_size} is '
                     f'larger than the train split ({len(train_images)}).')
  total_steps = optim.total_train_steps(config, steps_per_epoch)
  tx, schedule = optim.create_optimizer(config, steps_per_epoch)

  state = jax.device_put(create_train_state(config, model, tx, method),
                         replicated)
  os.makedirs(workdir, exist_ok=True)
  manager = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, 'checkpoints')),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=config.train.keep_checkpoints, create=True))
  state = _restore_or_init(manager, state)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))

  writer = metric_writers.create_default_writer(workdir)
  writer.write_hparams(_flat_hparams(config))
  writer.write_images(int(state.step),
                      {'augmented_views': _view_grid(method, state, config,
                                                     train_images)})

  step_fn = jit_train_step(config, model, tx, schedule, method,
                           steps_per_epoch, mesh)
  permutation = jax.jit(data.epoch_permutation, static_argnums=2,
                        out_shardings=replicated)
  device_images = jax.device_put(train_images, replicated)
  _, data_key = _streams(state.rng)
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=total_steps, writer=writer)

  step = int(state.step)
  train_seconds = 0.0
  metric_sums, interval_steps, interval_start = None, 0, time.time()
  perm, perm_epoch = None, None
  last_logged = {}
  while step < total_steps:
    epoch = step // steps_per_epoch
    if epoch != perm_epoch:
      perm, perm_epoch = permutation(data_key, epoch, len(train_images)), epoch
    state, metrics = step_fn(state, device_images, perm)
    step += 1
    interval_steps += 1
    metric_sums = metrics if metric_sums is None else jax.tree.map(
        jnp.add, metric_sums, metrics)
    report_progress(step, time.time())
    checkpoint_now = (step % config.train.checkpoint_every_steps == 0
                      or step == total_steps)
    if step % config.train.log_every_steps == 0 or checkpoint_now:
      # The only host synchronisation in the loop.
      means = {k: float(v) / interval_steps
               for k, v in jax.device_get(metric_sums).items()}
      if not np.isfinite(means['loss']):
        raise TrainingDiverged(
            f'The loss became {means["loss"]} between steps '
            f'{step - interval_steps} and {step}; nothing after the last '
            'finite log was checkpointed. Lower --config.optimizer.'
            'learning_rate or the loss weights, then resume or start afresh.')
      seconds = time.time() - interval_start
      train_seconds += seconds
      means['images_per_second'] = (interval_steps * config.train.batch_size
                                    / seconds)
      writer.write_scalars(step, {f'train/{k}': v for k, v in means.items()})
      last_logged = means
      eta = seconds / interval_steps * (total_steps - step)  # Latest pace.
      print(f'step {step}/{total_steps} epoch {step / steps_per_epoch:.2f} '
            f"loss {means['loss']:.4f} "
            f"std {means['normalized_embedding_std']:.4f} "
            f"{means['images_per_second']:.0f} img/s eta {eta / 60:.1f} min",
            flush=True)
      metric_sums, interval_steps, interval_start = None, 0, time.time()
    if checkpoint_now:  # Only after the finiteness check above.
      manager.save(step, args=ocp.args.StandardSave(state))
    probe_every = config.probe.every_epochs * steps_per_epoch
    if probe_every and step % probe_every == 0 and step < total_steps:
      accuracy = run_probe(model, state, splits, config, mesh)['test_accuracy']
      writer.write_scalars(step, {'probe/test_accuracy': accuracy})
      print(f'step {step}: linear probe test accuracy {accuracy:.4f}',
            flush=True)
  manager.wait_until_finished()

  probe = run_probe(model, state, splits, config, mesh)
  writer.write_scalars(step, {'probe/test_accuracy': probe['test_accuracy']})
  writer.flush()
  results = {
      'method': config.method.name,
      'test_accuracy': probe['test_accuracy'],
      'steps': step,
      'epochs': step / steps_per_epoch,
      'train_seconds_this_run': train_seconds,
      'total_seconds_this_run': time.time() - start_time,
      'probe': probe,
      'last_logged_train_metrics': last_logged,
      'devices': [str(d) for d in jax.devices()],
      'config': json.loads(config.to_json_best_effort()),
  }
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2)
  print(f"linear probe test accuracy {probe['test_accuracy']:.4f} "
        f"({len(splits['test'][1])} test images, best l2 {probe['best_l2']:g}); "
        f"total {results['total_seconds_this_run'] / 60:.1f} min", flush=True)
  return results
