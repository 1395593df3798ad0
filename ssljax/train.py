"""The training loop: `train_and_evaluate(config, workdir)`.

It loads the data onto the devices, builds the run (`pipeline.build`),
resumes from the workdir's latest checkpoint, steps the jitted train step,
logs every metric the step returns to TensorBoard, checkpoints with orbax,
runs the evaluators `config.evals` lists, and writes results.json.
"""
import contextlib
import json
import os
import signal
import time

from clu import metric_writers
from clu import periodic_actions
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax import checkpoints
from ssljax import collapse
from ssljax import data
from ssljax import defaults
from ssljax import evaluators
from ssljax import hosts
from ssljax import pictures
from ssljax import pipeline
from ssljax import provenance
from ssljax import run_history
from ssljax import run_lock
from ssljax import validate
from ssljax.errors import InputError


class TrainingDiverged(InputError):
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


def divergence_message(first: dict, means: dict, start: int, step: int
                       ) -> str:
  """Which metrics went non-finite first, and at which step, in words."""
  bad = {k: int(s) for k, s in first.items() if s >= 0}
  at = min(bad.values())
  names = ', '.join(sorted(k for k, s in bad.items() if s == at))
  return (f'The loss became {means["loss"]} between steps {start} and {step}: '
          f'first non-finite at step {at}: {names}; this interval\'s metrics '
          'are logged, and nothing after the last finite log was '
          'checkpointed. Lower --config.optimizer.learning_rate or the loss '
          'weights, then resume or start afresh.')


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


def due_evaluations(eval_every: dict[str, int], step: int,
                    total_steps: int) -> list[str]:
  """The evaluators ({name: period in steps, 0 for none}) whose period ends
  at `step`, unless the final evaluation, which runs them all, is less than
  half a period away: rounding `every_epochs` to steps can otherwise put a
  periodic evaluation a step or two before the final one, a repeat that
  costs a CPU-budget run half a minute."""
  return [name for name, every in eval_every.items()
          if every and step % every == 0 and 2 * (total_steps - step) >= every]


def load_splits(config: ml_collections.ConfigDict) -> dict:
  """{'train', 'test'}: (uint8 images, int32 labels) of `config.data`."""
  return {split: data.load_split(config.data.name, split,
                                 config.data.data_dir or None,
                                 config.data.download)
          for split in ('train', 'test')}


def view_grid(pipe: pipeline.Pipeline, images: np.ndarray,
              num: int = 8) -> np.ndarray:
  """[1, num*S, (1+K)*S, 3]: each row an original image and the K network
  inputs the method makes of it (two views, four rotations, nine tiles...)."""
  x, _ = jax.jit(pipe.method.views)(jax.random.PRNGKey(pipe.config.seed),
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


def write_diagnostics(writer: metric_writers.MetricWriter, step: int,
                      measures: dict, with_picture: bool):
  """The training loop's collapse diagnostics: numbers as scalars, spectra
  as histograms and, `with_picture`, as one picture."""
  curves = {k: v for k, v in measures.items() if np.ndim(v)}
  writer.write_scalars(step, {f'collapse/{k}': v for k, v in measures.items()
                              if not np.ndim(v)})
  writer.write_histograms(step, {f'collapse/{k}': v
                                 for k, v in curves.items()})
  if with_picture:
    writer.write_images(step, {'collapse/spectra': pictures.spectrum(
        curves, f'spectra at step {step}')[None]})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_config_change: bool = False) -> dict:
  """Checks every setting, holds the workdir (one live run each), then
  trains, checkpoints, logs to TensorBoard, evaluates and writes
  results.json. A workdir with checkpoints resumes from its newest intact
  one, with the config it was trained with unless `allow_config_change`."""
  validate.check(config)
  # Process 0 holds the workdir for all the processes of a multi-host run.
  with (run_lock.exclusive(workdir) if hosts.is_main()
        else contextlib.nullcontext()):
    return _train_and_evaluate(config, workdir, allow_config_change)


def config_changes(manager, step: int, record: dict | None, workdir: str,
                   config: ml_collections.ConfigDict, allowed: bool) -> dict:
  """The changes of `config` from the one checkpoint `step` was trained
  with (its record's, or config.json for a checkpoint older than records);
  a change of computation is refused unless `allowed`."""
  saved = record['config'] if record else (
      run_history.read(workdir) or [{}])[-1].get('config')
  found = run_history.changes(saved, config) if saved else {}
  run_history.check_resume(found, step, manager.directory, allowed)
  return found


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        allowed: bool) -> dict:
  start_time = time.time()
  mesh = pipeline.data_mesh()
  evals = evaluators.make_all(config)
  manager = checkpoints.manager(os.path.join(workdir, 'checkpoints'),
                                config.train.keep_checkpoints)
  latest = manager.latest_step()
  if latest is not None:  # A changed config is refused before any loading.
    config_changes(manager, latest, checkpoints.read_record(manager, latest),
                   workdir, config, allowed)
  splits = load_splits(config)
  train_images = splits['train'][0]
  pipe = pipeline.build(config, mesh,
                        data.describe(train_images, splits['train'][1]))
  steps_per_epoch, total_steps = pipe.steps_per_epoch, pipe.total_steps

  state, record, resumed = checkpoints.resume(manager, pipe.initial_state())
  found = ({} if resumed is None else config_changes(
      manager, resumed, record, workdir, config, allowed))
  if found:
    print('Resuming with changed settings (recorded in '
          f'{run_history.HISTORY}): ' + ', '.join(
              f'{k} {a!r} -> {b!r}' for k, (a, b) in found.items()), flush=True)
  history = (run_history.start(workdir, config, resumed, found, allowed)
             if hosts.is_main() else [])

  writer = metric_writers.create_default_writer(
      workdir, just_logging=not hosts.is_main())
  writer.write_hparams(flat_hparams(config))
  writer.write_images(int(state.step),
                      {'augmented_views': view_grid(pipe, train_images)})

  def evaluate(names, state, step):
    chosen = {n: evals[n] for n in names}
    results = evaluators.evaluate(pipe, state, splits, chosen)
    if not hosts.is_main():  # Each process computed the same results.
      return evaluators.summary(results, chosen)
    return evaluators.record(writer, workdir, step, results, chosen)

  # The collapse diagnostics see the same held-out views at every log.
  num_heldout = config.collapse.num_images
  heldout = (pipe.held_out_views(splits['test'][0][:num_heldout])
             if num_heldout else None)
  warned = {}  # {measure: (step, message)}: each warning is given once.

  def diagnose(state, step, with_picture):
    measures = jax.device_get(pipe.jitted_diagnostics(state, heldout))
    write_diagnostics(writer, step, measures, with_picture)
    for key, message in collapse.warnings(measures,
                                          config.collapse).items():
      if key not in warned:
        warned[key] = (step, message)
        print(f'WARNING step {step}: the run may be collapsing: {message}.',
              flush=True)
        writer.write_texts(step, {'collapse/warning': message})
    return measures

  device_images = pipe.device_split(train_images)
  # Only the online probe sees labels; without it the step is label-free.
  device_labels = (None if pipe.model.classifier is None else
                   pipe.device_split(splits['train'][1]))
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=total_steps, writer=writer)
  eval_every = {name: round(cfg.get('every_epochs', 0) * steps_per_epoch)
                for name, cfg in config.evals.items()}

  step = int(state.step)
  train_seconds = 0.0
  metric_sums, interval_steps, interval_start = None, 0, time.time()
  perm, perm_epoch = None, None
  last_logged, last_diagnostics = {}, {}
  nonfinite = None
  try:
    with stop_requests() as stops:  # Only between steps.
      while step < total_steps:
        epoch = step // steps_per_epoch
        if epoch != perm_epoch:
          perm, perm_epoch = pipe.epoch_order(state.rng, epoch), epoch
        state, metrics = pipe.jitted_train_step(state, device_images, perm,
                                                device_labels)
        step += 1
        interval_steps += 1
        metric_sums = metrics if metric_sums is None else jax.tree.map(
            jnp.add, metric_sums, metrics)
        nonfinite = first_nonfinite(
            nonfinite or {k: jnp.int32(-1) for k in metrics}, metrics, step)
        report_progress(step, time.time())
        stopping = bool(stops)
        if jax.process_count() > 1:  # All stop at the same (log) step.
          stopping = (step % config.train.log_every_steps == 0
                      and hosts.any_process(stopping))
        checkpoint_now = (step % config.train.checkpoint_every_steps == 0
                          or step == total_steps or stopping)
        if step % config.train.log_every_steps == 0 or checkpoint_now:
          # The only host synchronisation in the loop.
          means = {k: float(v) / interval_steps
                   for k, v in jax.device_get(metric_sums).items()}
          if not np.isfinite(means['loss']):
            writer.write_scalars(step, {f'train/{k}': v
                                        for k, v in means.items()})
            writer.flush()
            raise TrainingDiverged(divergence_message(
                jax.device_get(nonfinite), means, step - interval_steps, step))
          seconds = time.time() - interval_start
          train_seconds += seconds
          means['images_per_second'] = (
              interval_steps * config.train.batch_size / seconds)
          writer.write_scalars(step,
                               {f'train/{k}': v for k, v in means.items()})
          last_logged = means
          eta = seconds / interval_steps * (total_steps - step)  # Latest pace.
          rank = ''
          if heldout is not None:
            last_diagnostics = diagnose(state, step, checkpoint_now)
            rank = (' feature rankme '
                    f"{last_diagnostics['feature_rankme']:.1f}")
          print(f'step {step}/{total_steps} epoch {step / steps_per_epoch:.2f} '
                f"loss {means['loss']:.4f}{rank} "
                f"{means['images_per_second']:.0f} img/s "
                f'eta {eta / 60:.1f} min',
                flush=True)
          metric_sums, interval_steps, interval_start = None, 0, time.time()
        if checkpoint_now:  # Only after the finiteness check above.
          checkpoints.save(manager, step, state, config)
        if stopping:
          manager.wait_until_finished()
          writer.flush()
          signal_name = stops[0] if stops else 'A signal to another process'
          raise Stopped(f'{signal_name} stopped the run after step {step}, '
                        f'saved in {manager.directory}/{step}; run the same '
                        'command to resume from there.')
        due = due_evaluations(eval_every, step, total_steps)
        if due:
          eval_start = time.time()
          evaluate(due, state, step)
          interval_start += time.time() - eval_start  # Not training time.
      manager.wait_until_finished()  # Not cut short by a signal.

    evaluation = evaluate(list(evals), state, step) if evals else {}
    outcome = 'finished'
  except BaseException as e:
    outcome = f'{type(e).__name__}: {e}'.splitlines()[0]
    raise
  finally:
    if hosts.is_main():
      history = run_history.finish(workdir, history, to_step=step,
                                   train_seconds=train_seconds,
                                   outcome=outcome)
  writer.flush()
  results = {
      'method': config.method.name,
      'steps': step,
      'epochs': step / steps_per_epoch,
      'train_seconds': sum(h.get('train_seconds', 0.0) for h in history),
      'train_seconds_this_run': train_seconds,
      'total_seconds_this_run': time.time() - start_time,
      'evals': evaluation.get('evals', {}),
      'eval_summary': {k: v for k, v in evaluation.items() if k != 'evals'},
      'last_logged_train_metrics': last_logged,
      'last_diagnostics': {k: float(v) for k, v in last_diagnostics.items()
                           if not np.ndim(v)},
      'collapse_warnings': [{'step': s, 'measure': k, 'message': m}
                            for k, (s, m) in warned.items()],
      'input_standardization': {'mean': pipe.train_info.mean.tolist(),
                                'std': pipe.train_info.std.tolist()},
      'devices': [str(d) for d in jax.devices()],
      'provenance': provenance.record(),
      'config': json.loads(config.to_json_best_effort()),
      'history': run_history.summary(history),
  }
  if hosts.is_main():
    run_history.write_json(os.path.join(workdir, 'results.json'), results)
  print(f'{len(splits["test"][1])} test images; total '
        f"{results['total_seconds_this_run'] / 60:.1f} min", flush=True)
  return results
