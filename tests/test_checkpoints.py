"""Checkpoints are verified when read back: a damaged step is moved aside and
the newest intact one resumed; with none intact the run is refused; a step
a killed save left half-written is removed."""
import os
import shutil

import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from ssljax.errors import InputError
from ssljax.workdir import checkpoints


def _state(value: float) -> dict:
  return {'params': {'w': jnp.full((64, 64), float(value))},
          'opt_state': {'mu': jnp.arange(4096.0).reshape(64, 64) * value},
          'step': jnp.int32(value)}


def _config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({'optimizer': {'learning_rate': 0.3}})


def _save(directory, *steps):
  manager = checkpoints.manager(str(directory))
  for step in steps:
    checkpoints.save(manager, step, _state(step), _config())
  manager.wait_until_finished()


def _damage(directory, step):
  """64 bytes of the middle of the largest file of the step's state
  overwritten, as a failing disk or a cut copy leaves them."""
  files = [os.path.join(d, f) for d, _, names in os.walk(
      os.path.join(directory, str(step), checkpoints.STATE)) for f in names]
  largest = max(files, key=os.path.getsize)
  with open(largest, 'r+b') as f:
    f.seek(os.path.getsize(largest) // 2)
    f.write(b'\xa5' * 64)


def test_a_checkpoint_records_its_config_and_leaf_checksums(tmp_path):
  _save(tmp_path, 2)
  record = checkpoints.read_record(checkpoints.manager(str(tmp_path)), 2)
  assert record['config'] == {'optimizer': {'learning_rate': 0.3}}
  assert record['checksums'] == checkpoints.checksums(_state(2))
  assert sorted(record['checksums']) == ['opt_state.mu', 'params.w', 'step']
  # Each checksum sees the bytes, the shape and the dtype.
  other = checkpoints.checksums({'a': jnp.zeros(4), 'b': jnp.zeros((2, 2)),
                                 'c': jnp.zeros(4, jnp.int32)})
  assert len(set(other.values())) == 3


def test_a_restored_state_unlike_its_record_or_not_finite_is_named():
  record = {'checksums': checkpoints.checksums(_state(2))}
  changed = _state(2)
  changed['opt_state']['mu'] = changed['opt_state']['mu'].at[5, 7].set(2.5e38)
  assert checkpoints._problems(changed, record) == [
      '1 leaves differ from their checksums (opt_state.mu)']
  changed['params']['w'] = changed['params']['w'].at[0, 0].set(jnp.nan)
  problems = checkpoints._problems(changed, None)  # Older than records.
  assert problems == ['1 leaves hold NaN or infinity (params.w)']
  assert checkpoints._problems(_state(2), record) == []


def test_a_damaged_latest_step_falls_back_to_the_newest_intact_one(
    tmp_path, capsys):
  directory = tmp_path / 'checkpoints'
  _save(directory, 2, 4, 6)
  _damage(directory, 6)
  restored, record, step = checkpoints.resume(
      checkpoints.manager(str(directory)), _state(0))
  assert step == 4 and record['checksums'] == checkpoints.checksums(_state(4))
  np.testing.assert_array_equal(restored['opt_state']['mu'],
                                _state(4)['opt_state']['mu'])
  out = capsys.readouterr().out
  warning = [l for l in out.splitlines() if l.startswith('WARNING')]
  assert len(warning) == 1, out
  assert '/checkpoints/6 ' in warning[0] and 'resuming from step 4' in (
      warning[0])
  # Nothing is deleted: the damaged step is kept aside, out of orbax's way.
  assert sorted(os.listdir(directory)) == ['2', '4']
  assert os.listdir(tmp_path / checkpoints.DAMAGED_DIR) == ['6']


def test_with_no_intact_step_the_run_is_refused_and_nothing_moved(tmp_path):
  _save(tmp_path, 2, 4)
  _damage(tmp_path, 2)
  _damage(tmp_path, 4)
  with pytest.raises(InputError, match=r'No checkpoint in .* is intact: the '
                     r'checkpoint at .*/4 .*; the checkpoint at .*/2 .*'
                     r'Nothing was changed') as raised:
    checkpoints.resume(checkpoints.manager(str(tmp_path)), _state(0))
  assert '\n' not in str(raised.value)
  assert sorted(os.listdir(tmp_path)) == ['2', '4']


def test_a_non_finite_checkpoint_older_than_records_is_refused(tmp_path):
  bad = _state(2)
  bad['params']['w'] = bad['params']['w'].at[3, 3].set(jnp.inf)
  manager = checkpoints.manager(str(tmp_path))
  manager.save(2, args=ocp.args.Composite(default=ocp.args.StandardSave(bad)))
  manager.wait_until_finished()
  with pytest.raises(InputError, match=r'2 is damaged: 1 leaves hold NaN or '
                     r'infinity \(params.w\)'):
    checkpoints.resume(checkpoints.manager(str(tmp_path)), _state(0))


def test_no_checkpoint_starts_from_the_given_state(tmp_path):
  state, record, step = checkpoints.resume(
      checkpoints.manager(str(tmp_path)), _state(1))
  assert step is None and record is None and int(state['step']) == 1


def test_a_half_written_step_is_removed_with_a_note(tmp_path, capsys):
  _save(tmp_path, 2)
  leftover = tmp_path / f'4{ocp.path.atomicity.TMP_DIR_SUFFIX}-1795556599'
  (leftover / 'default').mkdir(parents=True)
  _, _, step = checkpoints.resume(checkpoints.manager(str(tmp_path)),
                                  _state(0))
  assert step == 2 and not leftover.exists()
  assert 'a save that was cut short' in capsys.readouterr().out


def test_a_checkpoint_rotated_away_after_it_was_listed_is_named_so(tmp_path):
  """`ssljax.evaluate --step=2` beside a live run that keeps its newest
  checkpoints: step 2 listed, then removed by the run's next save."""
  _save(tmp_path, 2, 4)
  manager = checkpoints.manager(str(tmp_path))
  assert 2 in manager.all_steps()
  shutil.rmtree(tmp_path / '2')  # As orbax's rotation removes it.
  with pytest.raises(InputError, match=(
      r'checkpoint at .*/2 is gone: it was removed after it was listed.* '
      r'holds steps \[4\] now')):
    checkpoints.restore(manager, _state(0), 2)
