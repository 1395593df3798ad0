"""The training loop: `train_and_evaluate(config, workdir)`.

As in Flax's examples/imagenet, the loop is a step followed by independent
periodic blocks: the interval's metrics (summed on the device, read at a
log), the log (TensorBoard, the collapse watch, a progress line), the
checkpoint, the stop a signal asks for, and the evaluations; each is an
object or a function below. Around the loop: the config is checked once,
the workdir held, the resume checked once against the checkpoint's config,
and the results written by one function.
"""
import contextlib
import json
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax import budget
from ssljax import collapse
from ssljax import console
from ssljax import data
from ssljax import defaults
from ssljax import errors
from ssljax import evaluators
from ssljax import features as features_lib
from ssljax import hosts
from ssljax import pictures
from ssljax import step as step_lib
from ssljax import validate
from ssljax.errors import InputError
from ssljax.workdir import checkpoints
from ssljax.workdir import history as history_lib
from ssljax.workdir import jsonfile
from ssljax.workdir import lock
from ssljax.workdir import provenance
from ssljax.workdir import writer as writer_lib


class TrainingDiverged(errors.RunFailed):
  """The loss is no longer finite (usually too high a learning rate)."""


class Stopped(InputError):
  """SIGTERM or SIGINT stopped the run, after it checkpointed its step."""


@jax.jit
def first_nonfinite(first: dict, metrics: dict, step: jax.Array) -> dict:
  """{metric: the first step at which it was not finite, or -1}, updated
  with the metrics of `step`; kept on the device, so that a divergence can
  name the term that went first without a host synchronisation per step."""
  return {k: jnp.where((first[k] < 0) & ~jnp.isfinite(v), step, first[k])
          for k, v in metrics.items()}


class IntervalMetrics:
  """The step metrics since the last log: summed on the device, with the
  first step at which each went non-finite, and the interval's training
  time (evaluations excluded). `close` is the loop's one host
  synchronisation."""

  def __init__(self, batch_size: int, step: int):
    self.batch_size = batch_size
    self.train_seconds = 0.0  # Over every closed interval.
    self._open(step)

  def _open(self, step: int):
    self.sums, self.first_bad, self.steps = None, None, 0
    self.start_step, self.start_time = step, time.time()

  def add(self, metrics: dict, step: int):
    self.steps += 1
    self.sums = metrics if self.sums is None else jax.tree.map(
        jnp.add, self.sums, metrics)
    self.first_bad = first_nonfinite(
        self.first_bad or {k: jnp.int32(-1) for k in metrics}, metrics, step)

  def exclude(self, seconds: float):
    """Leaves `seconds` (an evaluation's) out of the training time."""
    self.start_time += seconds

  def close(self, step: int) -> tuple[dict, str | None]:
    """(the interval's means and images per second, then a new interval;
    where the loss is not finite, what went non-finite first, in words)."""
    means = {k: float(v) / self.steps
             for k, v in jax.device_get(self.sums).items()}
    divergence = None
    if not np.isfinite(means['loss']):
      bad = {k: int(s) for k, s in jax.device_get(self.first_bad).items()
             if s >= 0}
      at = min(bad.values())
      names = ', '.join(sorted(k for k, s in bad.items() if s == at))
      divergence = (
          f'The loss became {means["loss"]} between steps {self.start_step} '
          f'and {step}: first non-finite at step {at}: {names}; this '
          "interval's metrics are logged, and nothing after the last finite "
          'log was checkpointed. Lower --config.optimizer.learning_rate or '
          'the loss weights, then resume or start afresh.')
    seconds = time.time() - self.start_time
    self.train_seconds += seconds
    means['images_per_second'] = self.steps * self.batch_size / seconds
    self._open(step)
    return means, divergence


@contextlib.contextmanager
def stop_requests():
  """Within the block, SIGTERM (the preemption signal of TPU VMs and
  Kubernetes) and SIGINT (Ctrl-C) are recorded instead of killing the run
  mid-step or mid-save: yields the list of the names received, which the
  loop reads after each step."""
  received = []
  def record(signum, frame):
    del frame  # Where the signal arrived does not matter.
    received.append(signal.Signals(signum).name)
  previous = {s: signal.signal(s, record)
              for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield received
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def stop_agreed(stops: list, step: int, log_every: int) -> bool:
  """Whether to stop after `step`: a signal was received; with several
  processes, all stop together at the next log step at which any one of
  them has received one."""
  if jax.process_count() == 1:
    return bool(stops)
  return step % log_every == 0 and hosts.any_process(bool(stops))


def due_evaluations(eval_every: dict[str, int], step: int,
                    total_steps: int) -> list[str]:
  """The evaluators ({name: period in steps, 0 for none}) whose period ends
  at `step`, unless the final evaluation, which runs them all, is less than
  half a period away: rounding `every_epochs` to steps can otherwise put a
  periodic evaluation a step or two before the final one, a repeat that
  costs a CPU-budget run half a minute."""
  return [name for name, every in eval_every.items()
          if every and step % every == 0 and 2 * (total_steps - step) >= every]


def evaluation_schedule(config: ml_collections.ConfigDict,
                        steps_per_epoch: int, total_steps: int
                        ) -> dict[int, list[str]]:
  """{step: the evaluators due then} of the periodic evaluations."""
  every = {name: round(cfg.get('every_epochs', 0) * steps_per_epoch)
           for name, cfg in config.evals.items()}
  due = {step: due_evaluations(every, step, total_steps)
         for step in range(1, total_steps + 1)}
  return {step: names for step, names in due.items() if names}


def device_inputs(train_step: step_lib.TrainStep, train: tuple
                  ) -> tuple[jax.Array, jax.Array | None]:
  """The train split's images on the devices, and its labels where the
  online probe reads them (without it the step is label-free)."""
  images, labels = train
  return train_step.device_split(images), (
      None if train_step.model.classifier is None
      else train_step.device_split(labels))


def choose_length(config: ml_collections.ConfigDict, mesh, info,
                  train: tuple, evaluate: 'Evaluation', watch: 'CollapseWatch'
                  ) -> tuple[ml_collections.ConfigDict, dict]:
  """(`config` with the length its budget allows, the plan): measures the
  evaluations on the initial encoder (recorded as step 0) and a log, then
  the training step on a throwaway copy of the initial state (compiled for
  a provisional length; the real schedule compiles anew), and fits the rest
  (`budget.length`). Every process trains process 0's choice."""
  print(f'ssljax: choosing the length that fits '
        f'{config.train.budget_minutes:g} minutes on this machine: '
        'evaluating the initial encoder, then timing the step', flush=True)
  steps_per_epoch = info.num_examples // config.train.batch_size
  provisional = step_lib.build(budget.with_length(config, math.ceil(
      (budget.CALIBRATION_STEPS + 2) / max(steps_per_epoch, 1))), mesh, info)
  state = provisional.initial_state()
  if evaluate.evals:
    evaluate(list(evaluate.evals), state, 0)
  # What an evaluation costs once its programs are compiled: the later
  # ones reuse them.
  spent = {n: max(0.0, s - evaluate.compile_seconds[n])
           for n, s in evaluate.seconds.items()}
  quartered = [n for n in budget.quartered(config) if n in spent]
  measure = watch.encoder.measure if watch.views is not None else None
  per_log = [seconds(measure, state, watch.views) if measure else 0.0
             for _ in range(2)][1]  # The first one compiles.
  images, labels = device_inputs(provisional, train)
  order = EpochOrder(provisional)
  steps = []
  for step in range(budget.CALIBRATION_STEPS + 2):
    start = time.time()
    state, metrics = provisional.jitted(state, images,
                                        order(step, state.rng), labels)
    jax.block_until_ready(metrics)
    steps.append(time.time() - start)
  costs = budget.Costs(
      elapsed=budget.process_seconds(), compile=steps[0],
      per_step=float(np.median(steps[2:])),
      evaluation=sum(spent.values()),
      evaluation_compile=sum(evaluate.compile_seconds.values()),
      periodic_evaluation=(spent['features'] + sum(
          spent[n] for n in quartered)) if quartered else 0.0,
      per_log=per_log)
  plan = budget.length(60 * config.train.budget_minutes, costs,
                       steps_per_epoch, config.train.log_every_steps)
  plan['quartered'] = budget.quartered(config)
  plan['num_epochs'] = hosts.process_0s(
      round(plan['num_epochs'] * budget.RESOLUTION)) / budget.RESOLUTION
  return budget.with_length(config, plan['num_epochs']), plan


def seconds(function, *args) -> float:
  """The wall time of `function(*args)`, its arrays computed."""
  start = time.time()
  jax.block_until_ready(function(*args))
  return time.time() - start


class EpochOrder:
  """The data order of the epoch a step is in, made once per epoch from the
  run's key."""

  def __init__(self, train_step: step_lib.TrainStep):
    self.train_step, self.epoch, self.order = train_step, None, None

  def __call__(self, step: int, rng: jax.Array) -> jax.Array:
    epoch = step // self.train_step.steps_per_epoch
    if epoch != self.epoch:
      self.epoch, self.order = epoch, self.train_step.epoch_order(rng, epoch)
    return self.order


class CollapseWatch:
  """The collapse measures of the training state on the same held-out views
  at every log, written to TensorBoard (spectra as histograms and, at a
  checkpoint, as a picture), with each warning of `collapse.warnings`
  given once."""

  def __init__(self, encoder: features_lib.Encoder, test_images: np.ndarray,
               config: ml_collections.ConfigDict,
               writer):
    self.encoder, self.config, self.writer = encoder, config, writer
    self.views = (encoder.held_out_views(test_images[:config.num_images])
                  if config.num_images else None)
    self.warned = {}  # {measure: (step, message)}.
    self.last = {}

  def __call__(self, state, step: int, with_picture: bool) -> dict:
    if self.views is None:
      return {}
    measures = self.encoder.measure(state, self.views)
    curves = {k: v for k, v in measures.items() if np.ndim(v)}
    self.writer.write_scalars(step, {f'collapse/{k}': v for k, v in
                                     measures.items() if not np.ndim(v)})
    self.writer.write_histograms(step, {f'collapse/{k}': v
                                        for k, v in curves.items()})
    if with_picture:
      picture = pictures.spectrum(curves, f'spectra at step {step}')
      if picture is not None:  # No matplotlib (`pictures`).
        self.writer.write_images(step, {'collapse/spectra': picture[None]})
    for key, message in collapse.warnings(measures, self.config).items():
      if key not in self.warned:
        self.warned[key] = (step, message)
        print(f'WARNING step {step}: the run may be collapsing: {message}.',
              flush=True)
        self.writer.write_texts(step, {'collapse/warning': message})
    self.last = measures
    return measures


class Log:
  """A log of the training: the interval's means to TensorBoard (where the
  loss is no longer finite, the run ends, TrainingDiverged naming what went
  first), the collapse watch, and the console's progress line."""

  def __init__(self, interval: IntervalMetrics, watch: CollapseWatch,
               writer,
               train_step: step_lib.TrainStep, progress: console.Progress):
    self.interval, self.watch, self.writer = interval, watch, writer
    self.progress = progress
    self.total_steps = train_step.total_steps
    self.steps_per_epoch = train_step.steps_per_epoch

  def __call__(self, step: int, state, with_picture: bool) -> dict:
    means, divergence = self.interval.close(step)
    self.writer.write_scalars(step, {f'train/{k}': v
                                     for k, v in means.items()})
    if divergence:
      raise TrainingDiverged(divergence)
    measures = self.watch(state, step, with_picture)
    rank = (f" feature rankme {measures['feature_rankme']:.1f}"
            if measures else '')
    eta = ((self.total_steps - step) * self.interval.batch_size
           / means['images_per_second'] / 60)  # At the latest pace.
    self.progress.show(
        step, f'epoch {step / self.steps_per_epoch:.2f} loss '
        f"{means['loss']:.4f}{rank} {means['images_per_second']:.0f} img/s",
        eta)
    return means


def header(config: ml_collections.ConfigDict, workdir: str,
           train_step: step_lib.TrainStep, step: int,
           plan: dict | None = None) -> str:
  """The run's first lines on the console: what trains where, for how long,
  and where its log and curves go."""
  devices = jax.devices()
  kinds = sorted({d.device_kind for d in devices})
  log = os.path.join(workdir, console.LOG)
  start = (f'resuming at step {step} of {train_step.total_steps}' if step
           else f'{train_step.total_steps} steps')
  lines = [
      f'ssljax: {config.method.name}, preset {config.get("preset", "?")}, '
      f'on {len(devices)} {jax.default_backend()} device'
      f'{"s" * (len(devices) > 1)} ({", ".join(kinds)}); workdir {workdir}',
      f'  {start} ({train_step.total_steps / train_step.steps_per_epoch:.2f}'
      f' epochs of {train_step.train_info.num_examples} images at batch '
      f'{config.train.batch_size}); '
      + (f'full log in {log}, ' if os.path.exists(log) else '')
      + f'curves: tensorboard --logdir {workdir}']
  if plan is not None:
    lines.append(
        f'  the length that fits {config.train.budget_minutes:g} minutes on '
        f"this machine: {plan['per_step']:.3f} s a step, "
        f"{plan['evaluation']:.0f} s an evaluation, {plan['elapsed']:.0f} s "
        'gone, '
        f"{plan['planned_seconds'] / 60:.1f} minutes planned in all; "
        f'--config.train.num_epochs={config.train.num_epochs} trains it '
        'again')
  if config.data.score_on == 'validation':
    lines.append('  scored on the validation split (data.validation_size '
                 'train images held out), not the test split')
  return '\n'.join(lines)


class Evaluation:
  """Runs evaluators on a state, on features extracted once, and records
  them (process 0 writes DIR/eval/<step>.json, the pictures and the
  events): `evaluators.evaluate` and `evaluators.record`."""

  def __init__(self, evals: dict, encoder: features_lib.Encoder,
               splits: dict, writer,
               workdir: str):
    self.evals, self.encoder, self.splits = evals, encoder, splits
    self.writer, self.workdir = writer, workdir
    # Of the last: the extraction's, each evaluator's, all and compiling.
    self.seconds, self.compile_seconds = {}, {}

  def __call__(self, names: list[str], state, step: int) -> dict:
    chosen = {n: self.evals[n] for n in names}
    results = evaluators.evaluate(self.encoder, state, self.splits, chosen)
    self.seconds = {n: results[n]['seconds'] for n in results}
    self.compile_seconds = {n: results[n]['compile_seconds'] for n in results}
    if not hosts.is_main():  # Each process computed the same results.
      return evaluators.summary(results, chosen)
    return evaluators.record(self.writer, self.workdir, step, results, chosen)

  def periodic(self, schedule: dict[int, list[str]],
               interval: IntervalMetrics):
    """(step, state) -> None: the evaluations of `schedule` ({step: names})
    at their steps, their time left out of the training time."""
    def run(step, state):
      if step in schedule:
        start = time.time()
        self(schedule[step], state, step)
        interval.exclude(time.time() - start)
    return run


def stopped(stops: list, step: int, directory) -> Stopped:
  """The one line a stop request ends the run with."""
  signal_name = stops[0] if stops else 'A signal to another process'
  return Stopped(f'{signal_name} stopped the run after step {step}, saved '
                 f'in {directory}/{step}; run the same command to resume '
                 'from there.')


def view_grid(train_step: step_lib.TrainStep, images: np.ndarray,
              num: int = 8) -> np.ndarray:
  """[1, num*S, (1+K)*S, 3]: each row an original image and the K network
  inputs the method makes of it (two views, four rotations, nine tiles...)."""
  x, _ = jax.jit(train_step.method.views)(
      jax.random.PRNGKey(train_step.config.seed),
      data.to_unit_range(images[:num]))
  size = x.shape[1]
  parts = np.asarray(x).reshape(-1, num, size, size, 3)  # [K, num, S, S, 3]
  original = jax.image.resize(data.to_unit_range(images[:num]),
                              parts.shape[1:], 'linear')
  rows = np.concatenate([original, *parts], axis=2)  # [num, S, (1+K)S, 3]
  return rows.reshape(1, num * size, -1, 3)


def flat_hparams(config: ml_collections.ConfigDict) -> dict:
  """The config as {'section.key': scalar} for TensorBoard's HParams."""
  return {k: v if isinstance(v, (int, float, str, bool)) else str(v)
          for k, v in defaults.flat(config.to_dict()).items()}


def saved_config(manager, workdir: str) -> dict | None:
  """The config the workdir's newest checkpoint was trained with (its
  record's, or the history's for a checkpoint older than records); None
  without a checkpoint."""
  latest = manager.latest_step()
  if latest is None:
    return None
  record = checkpoints.read_record(manager, latest)
  return record['config'] if record else (
      history_lib.read(workdir) or [{}])[-1].get('config')


def resume_changes(manager, saved: dict | None,
                   config: ml_collections.ConfigDict, allowed: bool) -> dict:
  """The changes of `config` from the `saved` config of the workdir's newest
  checkpoint, checked before anything is loaded: a change of computation
  is refused unless `allowed`."""
  latest = manager.latest_step()
  if latest is None:
    return {}
  found = history_lib.changes(saved, config) if saved else {}
  history_lib.check_resume(found, latest, manager.directory, allowed)
  if found:
    print('Resuming with changed settings (recorded in '
          f'{history_lib.HISTORY}): ' + ', '.join(
              f'{k} {a!r} -> {b!r}' for k, (a, b) in found.items()),
          flush=True)
  return found


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_config_change: bool = False) -> dict:
  """Checks every setting, holds the workdir (one live run each), then
  trains, checkpoints, logs to TensorBoard, evaluates and writes
  results.json. A workdir with checkpoints resumes from its newest intact
  one, with the config it was trained with unless `allow_config_change`."""
  validate.check(config)
  # Process 0 holds the workdir for all the processes of a multi-host run.
  with (lock.exclusive(workdir) if hosts.is_main()
        else contextlib.nullcontext()):
    return _train_and_evaluate(config, workdir, allow_config_change)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        allowed: bool) -> dict:
  start_time = time.time()
  mesh = hosts.data_mesh()
  evals = evaluators.make_all(config)
  manager = checkpoints.manager(os.path.join(workdir, 'checkpoints'),
                                config.train.keep_checkpoints)
  saved = saved_config(manager, workdir)
  config = budget.recorded(config, saved)
  found = resume_changes(manager, saved, config, allowed)
  splits = data.load_splits(config)
  (train_images, train_labels), (test_images, _) = (splits['train'],
                                                    splits['test'])
  evals = evaluators.for_labels(evals, train_labels is not None)
  if train_labels is None and config.model.online_probe:
    raise InputError(f'{config.data.name!r} has no labels for the online '
                     'probe; pass --config.model.online_probe=False.')
  info = data.describe(train_images, train_labels)
  encoder = features_lib.encoder(config, mesh, info)
  writer = writer_lib.create(workdir, just_logging=not hosts.is_main())
  watch = CollapseWatch(encoder, test_images, config.collapse, writer)
  evaluate = Evaluation(evals, encoder, splits, writer, workdir)
  plan = None
  if budget.chooses(config):
    config, plan = choose_length(config, mesh, info, splits['train'],
                                 evaluate, watch)
  train_step = step_lib.build(config, mesh, info)
  state, _, resumed = checkpoints.resume(manager, train_step.initial_state())
  history = (history_lib.start(workdir, config, resumed, found, allowed,
                               budget=plan)
             if hosts.is_main() else [])

  # From here on, how this start ends is recorded in its history.
  step, last_logged, outcome = int(state.step), {}, 'finished'
  interval = IntervalMetrics(config.train.batch_size, step)
  bar = None
  try:
    writer.write_hparams(flat_hparams(config))
    writer.write_images(step, {'augmented_views': view_grid(train_step,
                                                            train_images)})
    device_images, device_labels = device_inputs(train_step, splits['train'])
    order = EpochOrder(train_step)
    print(header(config, workdir, train_step, step, plan), flush=True)
    bar = console.Progress(train_step.total_steps, step)
    log = Log(interval, watch, writer, train_step, bar)
    evaluations = evaluate.periodic(evaluation_schedule(
        config, train_step.steps_per_epoch, train_step.total_steps), interval)
    with stop_requests() as stops:  # Only between steps.
      while step < train_step.total_steps:
        state, metrics = train_step.jitted(
            state, device_images, order(step, state.rng), device_labels)
        step += 1
        interval.add(metrics, step)
        bar.update(step)
        stopping = stop_agreed(stops, step, config.train.log_every_steps)
        checkpoint_now = (step % config.train.checkpoint_every_steps == 0
                          or step == train_step.total_steps or stopping)
        if step % config.train.log_every_steps == 0 or checkpoint_now:
          last_logged = log(step, state, with_picture=checkpoint_now)
        if checkpoint_now:  # Only after the finiteness check of the log.
          checkpoints.save(manager, step, state, config)
        if stopping:
          manager.wait_until_finished()
          raise stopped(stops, step, manager.directory)
        evaluations(step, state)
      manager.wait_until_finished()
    evaluation = evaluate(list(evals), state, step) if evals else {}
  except BaseException as e:
    ran_out = errors.exhausted(e)
    if ran_out and hosts.is_main():  # Perhaps by a save, unfinished.
      ran_out = errors.exhausted(
          checkpoints.remove_unfinished(manager)) or ran_out
    outcome = (ran_out or f'{type(e).__name__}: {e}').splitlines()[0]
    if ran_out:
      raise InputError(ran_out) from None
    raise
  finally:
    if bar is not None:
      bar.close()
    writer.close()  # tensorboardX writes what it queued on closing.
    if hosts.is_main():
      history = history_lib.finish(workdir, history, to_step=step,
                                   train_seconds=interval.train_seconds,
                                   outcome=outcome)
  return write_results(
      workdir, config, train_step, step, evaluation, last_logged, watch,
      history, train_seconds=interval.train_seconds,
      total_seconds=time.time() - start_time, num_test=len(test_images))


def write_results(workdir: str, config: ml_collections.ConfigDict,
                  train_step: step_lib.TrainStep, step: int, evaluation: dict,
                  last_logged: dict, watch: CollapseWatch, history: list,
                  *, train_seconds: float, total_seconds: float,
                  num_test: int) -> dict:
  """results.json (process 0 writes it), returned: what the run measured,
  how long it took, and everything needed to trace it."""
  results = {
      'method': config.method.name,
      'steps': step,
      'epochs': step / train_step.steps_per_epoch,
      'train_seconds': sum(h.get('train_seconds', 0.0) for h in history),
      'train_seconds_this_run': train_seconds,
      'total_seconds_this_run': total_seconds,
      'evals': evaluation.get('evals', {}),
      'eval_summary': {k: v for k, v in evaluation.items() if k != 'evals'},
      'last_logged_train_metrics': last_logged,
      'last_diagnostics': {k: float(v) for k, v in watch.last.items()
                           if not np.ndim(v)},
      'collapse_warnings': [{'step': s, 'measure': k, 'message': m}
                            for k, (s, m) in watch.warned.items()],
      'input_standardization': {'mean': train_step.train_info.mean.tolist(),
                                'std': train_step.train_info.std.tolist()},
      'devices': [str(d) for d in jax.devices()],
      'provenance': provenance.record(),
      'config': json.loads(config.to_json_best_effort()),
      'history': history_lib.summary(history),
      'budget': next((h['budget'] for h in history if 'budget' in h), None),
  }
  if hosts.is_main():
    jsonfile.write(os.path.join(workdir, 'results.json'), results)
  print(f'{num_test} {config.data.score_on} images; total '
        f'{total_seconds / 60:.1f} min',
        flush=True)
  return results
