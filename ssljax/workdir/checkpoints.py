"""Train-state checkpoints that are verified when they are read back.

Orbax writes each step's state with TensorStore, which keeps no checksum of
the values (orbax's zarr3 layout checksums only the chunk index, and the
default layout nothing): 64 zeroed bytes in a data file restored silently,
in 2 of about 15 tries, as optimizer momenta holding NaN and 2.5e38. So every checkpoint
carries a record beside the state (one orbax step, written atomically with
it): the config that produced it and a BLAKE2 checksum of each leaf's dtype,
shape and bytes. A restore recomputes the checksums and checks every float
leaf for finiteness; a damaged latest step is moved aside (nothing is
deleted) and the newest intact one resumed, with one line naming both.
Checkpoints written before records existed are checked for finiteness only.
"""
import glob
import hashlib
import json
import os
import re
import shutil

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ssljax import errors
from ssljax import hosts
from ssljax.errors import InputError

# Orbax's name of a lone item, kept for the state so that checkpoints
# written before the record existed still restore.
STATE = 'default'
RECORD = 'record'
DAMAGED_DIR = 'damaged_checkpoints'  # Beside checkpoints/, in the workdir.


class Damaged(InputError):
  """A checkpoint whose state cannot be read back as it was written."""


def manager(directory: str, keep: int | None = None) -> ocp.CheckpointManager:
  """Orbax's manager of the checkpoints in `directory`, keeping the latest
  `keep` (all when None). Orbax's own removal of what an unfinished save
  left is off: it runs in a thread beside the start (and lists the folder
  while TFDS's test mocks redirect every path); `resume` removes it, on
  the process that holds the workdir, before restoring (orbax's listing
  of steps skips such folders)."""
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True, cleanup_tmp_directories=False),
      item_handlers={STATE: ocp.StandardCheckpointHandler(),
                     RECORD: ocp.JsonCheckpointHandler()})


def remove_unfinished(checkpoints: ocp.CheckpointManager
                      ) -> Exception | None:
  """Waits for the save in flight, then removes the part-written files of
  saves that failed (orbax writes a save under a temporary name and renames
  it when complete), giving their space back at once: after a full disk,
  the run's history can still record how it ended. Returns the error of
  the save that failed, if one did."""
  failed = None
  try:
    checkpoints.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    failed = e
  for path in glob.glob(os.path.join(str(checkpoints.directory),
                                     '*.orbax-checkpoint-tmp*')):
    shutil.rmtree(path, ignore_errors=True)
  return failed


def _named_leaves(tree) -> list[tuple[str, object]]:
  """[('params.encoder.Conv_0.kernel', leaf), ...] of a pytree."""
  return [('.'.join(str(getattr(k, 'name', getattr(k, 'key', getattr(
      k, 'idx', k)))) for k in path), leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def leaf_specs(tree) -> dict[str, tuple]:
  """{'params.encoder.Conv_0.kernel': (shape, dtype)} of a train state, or
  of a checkpoint's metadata tree."""
  return {name: (tuple(leaf.shape), np.dtype(leaf.dtype))
          for name, leaf in _named_leaves(tree)}


def layout_difference(saved: dict, expected: dict, most: int = 4) -> str:
  """What differs between two leaf_specs, in words; '' when nothing."""
  parts = []
  only_saved = sorted(set(saved) - set(expected))
  only_expected = sorted(set(expected) - set(saved))
  changed = sorted(k for k in set(saved) & set(expected)
                   if saved[k] != expected[k])
  if only_saved:
    parts.append(f'only in the checkpoint: {listed(only_saved, most)}')
  if only_expected:
    parts.append(f'only in this run: {listed(only_expected, most)}')
  if changed:
    parts.append('of another shape or dtype: ' + listed(
        [f'{k} {saved[k][0]} vs {expected[k][0]}' for k in changed], most))
  return '; '.join(parts)


def listed(names: list[str], most: int = 4) -> str:
  """'a, b, c, d and 3 more'."""
  return ', '.join(names[:most]) + (
      f' and {len(names) - most} more' if len(names) > most else '')


def _host_value(leaf) -> np.ndarray:
  """A leaf's value on this host: the local copy of a replicated array,
  which is the whole array on every host of a multi-host run too."""
  if getattr(leaf, 'is_fully_replicated', False):
    leaf = leaf.addressable_data(0)
  return np.asarray(leaf)


def checksums(state) -> dict[str, str]:
  """{leaf name: BLAKE2b-128 of its dtype, shape and bytes}."""
  sums = {}
  for name, leaf in _named_leaves(state):
    value = _host_value(leaf)
    digest = hashlib.blake2b(f'{value.dtype}{value.shape}'.encode(),
                             digest_size=16)
    digest.update(np.ascontiguousarray(value).tobytes())
    sums[name] = digest.hexdigest()
  return sums


def save(checkpoints: ocp.CheckpointManager, step: int, state,
         config: ml_collections.ConfigDict):
  """Saves `state` as `step` with its record (config and checksums);
  asynchronous, like orbax's own save. A save that the disk has no room for
  (the state's size, which compression only lowers) is refused before it
  writes anything, where orbax would fill the disk with part of it."""
  needed = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
  directory = str(checkpoints.directory)
  if shutil.disk_usage(directory).free < needed:
    raise InputError(errors.disk_full(
        f'saving the checkpoint of step {step} in {directory} needs up to '
        f'{errors.size(needed)}', directory))
  record = {'step': step,
            'config': json.loads(config.to_json_best_effort()),
            'checksums': checksums(state)}
  checkpoints.save(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardSave(state), RECORD: ocp.args.JsonSave(record)}))


def _problems(restored, record: dict | None) -> list[str]:
  """What is wrong with a restored state, in words: leaves whose checksum
  differs from the record's, and float leaves that are not finite."""
  problems = []
  if record is not None:
    now = checksums(restored)
    differ = sorted(k for k, v in record['checksums'].items()
                    if now.get(k) != v)
    if differ:
      problems.append(f'{len(differ)} leaves differ from their checksums '
                      f'({listed(differ, 3)})')
  nonfinite = [name for name, leaf in _named_leaves(restored)
               if np.issubdtype(np.dtype(leaf.dtype), np.floating)
               and not np.isfinite(_host_value(leaf)).all()]
  if nonfinite:
    problems.append(f'{len(nonfinite)} leaves hold NaN or infinity '
                    f'({listed(nonfinite, 3)})')
  return problems


def _steps(where: str) -> list[int]:
  """The steps of the checkpoints beside `where`, as the disk has them."""
  return sorted(int(d) for d in os.listdir(os.path.dirname(where))
                if d.isdigit())


def restore(checkpoints: ocp.CheckpointManager, state, step: int
            ) -> tuple[object, dict | None]:
  """(the checkpoint of `step` restored into the structure of `state`, its
  record or None for a checkpoint older than records). A checkpoint of
  another layout raises InputError; one that cannot be read back as it was
  written raises Damaged. Nothing on disk is changed."""
  where = f'{checkpoints.directory}/{step}'
  try:
    items = checkpoints.item_metadata(step)
    saved_layout = leaf_specs(items[STATE].tree)
  except Exception:  # pylint: disable=broad-except
    items, saved_layout = {}, None  # Unreadable: the restore reports it.
  if saved_layout is not None:
    difference = layout_difference(saved_layout, leaf_specs(state))
    if difference:
      raise InputError(
          f'The checkpoint at {where} holds a train state of another layout '
          f'than this run ({difference}): it was written with another '
          'method or model config, or by an older ssljax (before 2026-11-24 '
          'the jigsaw kept its permutation set in method_state). Nothing '
          'was changed: resume with the config the run started with (saved '
          'as config.json in the workdir) and the ssljax that wrote it, or '
          'start afresh in another workdir.')
  wanted = {STATE: ocp.args.StandardRestore(
      jax.tree.map(ocp.utils.to_shape_dtype_struct, state))}
  has_record = RECORD in (items.keys() if hasattr(items, 'keys') else ())
  if has_record:
    wanted[RECORD] = ocp.args.JsonRestore()
  try:
    restored = checkpoints.restore(step, args=ocp.args.Composite(**wanted))
  except Exception as e:  # pylint: disable=broad-except
    if not os.path.isdir(where):
      raise InputError(
          f'The checkpoint at {where} is gone: it was removed after it was '
          'listed, as a run training in this workdir removes all but its '
          f'newest train.keep_checkpoints; it holds steps {_steps(where)} '
          'now: evaluate one of those, or raise keep_checkpoints.') from None
    reason = re.split(r'\.\s|\n', str(e).strip())[0][:160]
    raise Damaged(f'the checkpoint at {where} cannot be read '
                  f'({type(e).__name__}: {reason})') from None
  record = restored[RECORD] if has_record else None
  problems = _problems(restored[STATE], record)
  if problems:
    raise Damaged(f'the checkpoint at {where} is damaged: '
                  + '; '.join(problems))
  return restored[STATE], record


def resume(checkpoints: ocp.CheckpointManager, state
           ) -> tuple[object, dict | None, int | None]:
  """(state, record, step) of the newest intact checkpoint, or (`state`,
  None, None) when there is none yet. Damaged steps newer than it are
  moved to DAMAGED_DIR beside the checkpoints, with one line naming them
  and the step resumed; when no step is intact, nothing is moved and the
  run is refused. A half-written step that a killed save left is removed."""
  directory = str(checkpoints.directory)
  for name in os.listdir(directory) if hosts.is_main() else ():
    if ocp.path.atomicity.TMP_DIR_SUFFIX in name:
      shutil.rmtree(os.path.join(directory, name))
      print(f'Note: removed {name}, a save that was cut short (never a '
            'complete checkpoint).', flush=True)
  hosts.barrier('ssljax: checkpoints cleaned')
  steps = sorted(checkpoints.all_steps(), reverse=True)
  damaged = []
  for step in steps:
    try:
      restored, record = restore(checkpoints, state, step)
    except Damaged as e:
      damaged.append((step, str(e)))
      continue
    if damaged:
      aside = os.path.join(os.path.dirname(directory), DAMAGED_DIR)
      if hosts.is_main():  # Every process found the same damage.
        os.makedirs(aside, exist_ok=True)
        for bad, _ in damaged:
          shutil.move(os.path.join(directory, str(bad)),
                      os.path.join(aside, str(bad)))
      hosts.barrier('ssljax: damaged checkpoints moved')
      checkpoints.reload()
      print(f'WARNING: {damaged[0][1]}; resuming from step {step}, the newest '
            f'intact checkpoint (damaged steps {[s for s, _ in damaged]} '
            f'moved to {aside}).', flush=True)
    unverified = ('' if record else ' (written before checkpoints carried '
                  'checksums: checked for finiteness only)')
    print(f'Resuming from the checkpoint at step {step}{unverified}.',
          flush=True)
    return restored, record, step
  if damaged:
    raise InputError(
        f'No checkpoint in {checkpoints.directory} is intact: '
        + '; '.join(reason for _, reason in damaged) + '. Nothing was '
        'changed; to start afresh, move that folder aside or pass another '
        '--workdir.')
  return state, None, None


def read_record(checkpoints: ocp.CheckpointManager, step: int) -> dict | None:
  """The record of `step` alone (no state is read); None for a checkpoint
  older than records, or one whose record cannot be read (its restore then
  reports the damage)."""
  try:
    return checkpoints.restore(step, args=ocp.args.Composite(
        **{RECORD: ocp.args.JsonRestore()}))[RECORD]
  except Exception:  # pylint: disable=broad-except
    return None
