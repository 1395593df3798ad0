"""The train step of a config: `build(config, mesh, train_info) -> TrainStep`.

`TrainStep` binds the method, model, optimizer, schedule and training length
of a config once. Called, it does augment -> encode -> project -> loss ->
optimizer update over a global batch sharded on the mesh, and never asks
which method it runs. Training, the benchmark, the experiments and the tests
all call `build`, and the benchmark times the step's own parts (`inputs`,
`encoder_forward`, `head_loss`), so what is measured is what trains. What
the evaluators see of a train state is `ssljax.features`'.

`TrainState` is the only thing checkpointed, and restoring it restores
everything, the data order and augmentation randomness included, because both
are pure functions of `state.rng` and `state.step`.
"""
import dataclasses
import functools
from typing import Any

import flax
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssljax import data
from ssljax import hosts
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


def key_streams(rng: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Independent (augmentation, data order) key streams of a run."""
  aug_key, data_key = jax.random.split(rng)
  return aug_key, data_key


def gather_rows(mesh: Mesh, split: jax.Array, idx: jax.Array) -> jax.Array:
  """`split[idx]` for a `split` whose rows are divided over the mesh (no
  device holds it whole) and replicated indices: each device takes the
  rows of `idx` it holds, zeros elsewhere, and a sum over the devices
  scatters each its shard of the batch. The result is `split[idx]`
  exactly, split on 'data', for a few MB of traffic per step."""
  def local(rows, idx):
    first = jax.lax.axis_index('data') * rows.shape[0]
    where = idx - first
    mine = (where >= 0) & (where < rows.shape[0])
    taken = rows[jnp.clip(where, 0, rows.shape[0] - 1)]
    mine = mine.reshape(mine.shape + (1,) * (taken.ndim - 1))
    taken = jnp.where(mine, taken, 0).astype(jnp.int32)  # Summable.
    return jax.lax.psum_scatter(taken, 'data', tiled=True).astype(rows.dtype)
  return jax.shard_map(local, mesh=mesh, in_specs=(P('data'), P()),
                       out_specs=P('data'))(split, idx)


@dataclasses.dataclass(frozen=True, eq=False)
class TrainStep:
  """The train step of a config and its parts, bound to it; see `build`."""
  config: ml_collections.ConfigDict
  mesh: Mesh
  method: methods.Method
  model: models.SSLModel
  optimizer: optax.GradientTransformation
  schedule: optax.Schedule
  train_info: data.SplitInfo
  steps_per_epoch: int
  total_steps: int

  @property
  def replicated(self) -> NamedSharding:
    return hosts.replicated(self.mesh)

  @property
  def batch_sharded(self) -> NamedSharding:
    return hosts.split_rows(self.mesh)

  def initial_state(self) -> TrainState:
    """The state before the first step, replicated over the mesh."""
    rng, init_rng = jax.random.split(jax.random.PRNGKey(self.config.seed))
    # The encoder pools globally, so any input size builds the same
    # parameters; the head's input width depends on how many parts it sees.
    groups = self.method.head_groups
    size = self.config.augment.image_size

    def create():
      example = jnp.zeros((2 * groups, size, size, 3))
      variables = self.model.init(init_rng, example, train=False,
                                  head_groups=groups)
      params = variables['params']
      return TrainState(
          step=jnp.zeros((), jnp.int32), params=params,
          batch_stats=variables['batch_stats'],
          opt_state=self.optimizer.init(params),
          method_state=self.method.init_state(params), rng=rng)
    # Built on the devices, replicated: with several processes each builds
    # the same state on its own devices, and no host value crosses them.
    return jax.jit(create, out_shardings=self.replicated)()

  def device_split(self, host: np.ndarray) -> jax.Array:
    """A training split (uint8 images or labels) on the devices, its rows
    divided over the mesh (padded with zeros to a multiple of its size; the
    padding is never drawn): with several processes, each puts only its own
    rows on its devices. A split too large for them is refused, naming the
    memory it needs."""
    pad = -len(host) % self.mesh.size
    padded = np.concatenate([host, np.zeros((pad,) + host.shape[1:],
                                            host.dtype)])
    hosts.check_fits(padded.nbytes // self.mesh.size,
                     f'The training split ({host.shape} {host.dtype})')
    return hosts.global_array(self.batch_sharded, padded)

  @functools.cached_property
  def epoch_order(self):
    """(rng, epoch) -> the order of the train split in that epoch,
    replicated: a pure function of the run's key, so a resumed run sees the
    data order of an uninterrupted one."""
    def order(rng, epoch):
      _, data_key = key_streams(rng)
      return data.epoch_permutation(data_key, epoch,
                                    self.train_info.num_examples)
    return jax.jit(order, out_shardings=self.replicated)

  def batch_indices(self, state: TrainState, perm: jax.Array) -> jax.Array:
    """The split's indices of the batch of step `state.step`:
    `perm[i*B:(i+1)*B]`, replicated (every device looks for its rows)."""
    batch_size = self.config.train.batch_size
    start = (state.step % self.steps_per_epoch) * batch_size
    return jax.lax.dynamic_slice_in_dim(perm, start, batch_size)

  def inputs(self, state: TrainState, images: jax.Array, perm: jax.Array
             ) -> tuple[jax.Array, methods.Outputs]:
    """The network inputs of step `state.step`, standardised, and the
    method's extra outputs (labels): the batch of the device-resident uint8
    split, as the method transforms it."""
    idx = self.batch_indices(state, perm)
    aug_key, _ = key_streams(state.rng)
    x, extras = self.method.views(
        jax.random.fold_in(aug_key, state.step),
        data.to_unit_range(gather_rows(self.mesh, images, idx)))
    return data.standardize_channels(x, self.train_info), extras

  def encoder_forward(self, params, batch_stats, x):
    """Encoder features in training mode (grouped for the head) and the
    updated BatchNorm statistics."""
    h, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, x, train=True,
        head_groups=self.method.head_groups, mutable=['batch_stats'],
        method=models.SSLModel.encode)
    return h, updates['batch_stats']

  def head_loss(self, params, batch_stats, method_state, h, extras):
    """Heads and the method's loss on encoder features `h`: (loss, (terms,
    next method state, updated BatchNorm statistics))."""
    (z, p), updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, h, train=True,
        mutable=['batch_stats'], method=models.SSLModel.heads)
    loss, terms, method_state = self.method.loss(
        {**self.method.outputs(z, p), **extras}, method_state)
    return loss, (terms, method_state, updates['batch_stats'])

  def online_probe_loss(self, params, h, labels
                        ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The online probe's cross-entropy and accuracy on the encoder features
    `h` of the step's first input of each image (its first view or part),
    detached: it trains the probe alone."""
    first = h[:labels.shape[0], :h.shape[1] // self.method.head_groups]
    logits = self.model.apply({'params': params}, first,
                              method=models.SSLModel.classify)
    cross_entropy = jnp.mean(
        optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    return cross_entropy, {
        'online_probe_cross_entropy': cross_entropy,
        'online_probe_accuracy': jnp.mean(jnp.argmax(logits, -1) == labels)}

  def loss(self, params, batch_stats, method_state, x, extras, labels=None):
    """The differentiated objective: encoder, heads and method loss, plus
    the online probe's cross-entropy when there are `labels`: (objective,
    (method loss, terms, next method state, updated BatchNorm
    statistics))."""
    h, batch_stats = self.encoder_forward(params, batch_stats, x)
    loss, (terms, method_state, batch_stats) = self.head_loss(
        params, batch_stats, method_state, h, extras)
    objective = loss
    if labels is not None:
      probe_loss, probe_terms = self.online_probe_loss(params, h, labels)
      objective, terms = loss + probe_loss, {**terms, **probe_terms}
    return objective, (loss, terms, method_state, batch_stats)

  def targets(self, state: TrainState, x: jax.Array) -> methods.Outputs:
    """The method's outputs computed without gradient (BYOL's target)."""
    def project(params, x):
      z, _ = self.model.apply(
          {'params': params, 'batch_stats': state.batch_stats}, x, train=True,
          mutable=['batch_stats'], method=models.SSLModel.project)
      return z
    return jax.lax.stop_gradient(
        self.method.targets(state.method_state, project, x))

  def __call__(self, state: TrainState, images: jax.Array, perm: jax.Array,
               labels: jax.Array | None = None
               ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on the batch of step `state.step`; the split's
    `labels` are given exactly when the model has an online probe, and are
    seen by nothing else.

    All inputs of a batch (both views, all tiles) go through the network as
    one batch, so BatchNorm statistics are over the whole global batch (as
    in SimCLR), and the result does not depend on the device count.
    """
    if (labels is None) != (self.model.classifier is None):
      raise ValueError('The labels are for the online probe: pass them '
                       'exactly when config.model.online_probe is on.')
    x, extras = self.inputs(state, images, perm)
    extras = {**extras, **self.targets(state, x)}
    if labels is not None:
      labels = gather_rows(self.mesh, labels, self.batch_indices(state, perm))
    (_, (loss, terms, method_state, batch_stats)), grads = jax.value_and_grad(
        self.loss, has_aux=True)(state.params, state.batch_stats,
                                 state.method_state, x, extras, labels)
    updates, opt_state = self.optimizer.update(grads, state.opt_state,
                                               state.params)
    params = optax.apply_updates(state.params, updates)
    method_state = self.method.after_update(
        method_state, params, state.step / max(self.total_steps, 1))
    metrics = {'loss': loss, **terms,
               'learning_rate': self.schedule(state.step),
               'grad_norm': optax.tree.norm(grads)}
    return state.replace(step=state.step + 1, params=params,
                         batch_stats=batch_stats, opt_state=opt_state,
                         method_state=method_state), metrics

  @functools.cached_property
  def jitted(self):
    """The step jitted once: state replicated and donated."""
    return jax.jit(self.__call__,
                   out_shardings=(self.replicated, self.replicated),
                   donate_argnums=(0,))


def build(config: ml_collections.ConfigDict, mesh: Mesh,
          train_info: data.SplitInfo) -> TrainStep:
  """The train step of `config` (checked by `validate.check`) on `mesh`, for
  a train split described by `train_info`."""
  steps_per_epoch = train_info.num_examples // config.train.batch_size
  if steps_per_epoch == 0:
    raise InputError(
        f'config.train.batch_size={config.train.batch_size} is larger than '
        f'the train split ({train_info.num_examples} examples).')
  # `num_epochs` may be fractional: the smoke presets train a few dozen steps.
  total_steps = int(config.train.num_epochs * steps_per_epoch)
  if total_steps == 0 and config.train.num_epochs > 0:
    raise InputError(
        f'config.train.num_epochs={config.train.num_epochs} is less than one '
        f'step ({steps_per_epoch} steps make an epoch); train at least '
        f'{1 / steps_per_epoch:.2g} epochs, or 0 to evaluate the initial '
        'encoder.')
  optimizer, schedule = optim.create_optimizer(config, steps_per_epoch,
                                               total_steps)
  return TrainStep(
      config=config, mesh=mesh, method=methods.make(config),
      model=models.create_model(config, train_info.num_classes),
      optimizer=optimizer, schedule=schedule, train_info=train_info,
      steps_per_epoch=steps_per_epoch, total_steps=total_steps)
