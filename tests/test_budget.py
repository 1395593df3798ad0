"""A budget run chooses its length from what it measured, records it, and
is trained again by the length it recorded (`ssljax.budget`)."""
import dataclasses
import json
import math
import os

import pytest

from ssljax import budget
from ssljax import train
from ssljax import validate
from ssljax.errors import InputError

COSTS = budget.Costs(elapsed=100.0, compile=20.0, per_step=0.5,
                     evaluation=80.0, periodic_evaluation=60.0, per_log=1.0)


def test_a_worked_plan():
  # 1800 s, less 100 gone, 20 to compile, 3 evaluations while training at
  # 60 s and the final one at 80 s: 1420 s; 0.9 of that at 0.5 s a step
  # and 1 s a log every 50 steps is 2457 steps, 6.3 epochs of 390 steps.
  plan = budget.length(1800, COSTS, steps_per_epoch=390, log_every_steps=50)
  assert (plan['num_epochs'], plan['steps']) == (6.3, 2457)
  assert plan['planned_seconds'] == pytest.approx(380 + 2457 * 0.52)
  # Without evaluations while training: 1600 s, 2769 steps, 7.1 epochs.
  plan = budget.length(1800, dataclasses.replace(
      COSTS, periodic_evaluation=0.0), steps_per_epoch=390,
                       log_every_steps=50)
  assert (plan['num_epochs'], plan['steps']) == (7.1, 2769)


@pytest.mark.parametrize('per_step', [0.01, 0.3, 2.0])
@pytest.mark.parametrize('minutes', [10, 30, 120])
@pytest.mark.parametrize('quartered', [True, False])
def test_the_plan_fills_the_budget_and_stays_inside_it(per_step, minutes,
                                                       quartered):
  costs = budget.Costs(elapsed=60.0, compile=15.0, per_step=per_step,
                       evaluation=70.0, per_log=0.5,
                       periodic_evaluation=50.0 if quartered else 0.0)
  plan = budget.length(60 * minutes, costs, steps_per_epoch=781,
                       log_every_steps=50)
  # MARGIN (0.9) of the training time, less the rounding to hundredths of
  # an epoch: not wasting the budget, not exceeding it.
  assert 0.85 * 60 * minutes < plan['planned_seconds'] <= 60 * minutes
  assert plan['steps'] == int(plan['num_epochs'] * 781)
  assert plan['num_epochs'] == round(plan['num_epochs'], 2)


def test_a_budget_too_small_to_train_trains_the_shortest_and_says_so():
  plan = budget.length(60, COSTS, steps_per_epoch=390, log_every_steps=50)
  assert (plan['num_epochs'], plan['steps']) == (0.01, 3)
  assert plan['planned_seconds'] > 60
  plan = budget.length(60, COSTS, steps_per_epoch=4, log_every_steps=50)
  assert (plan['num_epochs'], plan['steps']) == (0.25, 1)


def test_the_length_fills_the_quartered_periods_and_nothing_else(
    tiny_config):
  config = tiny_config
  config.train.budget_minutes = 5.0
  config.train.num_epochs = math.nan
  config.evals.knn.every_epochs = math.nan
  config.evals.linear_probe.every_epochs = 0.5
  validate.check(config)
  assert budget.chooses(config) and budget.resolved(config) is config
  assert budget.quartered(config) == ['knn']
  chosen = budget.with_length(config, 3.0)
  assert chosen.train.num_epochs == 3.0
  assert chosen.evals.knn.every_epochs == 0.75
  assert chosen.evals.linear_probe.every_epochs == 0.5
  assert math.isnan(config.train.num_epochs)  # A copy.
  assert budget.recorded(config, {'train': {'num_epochs': 2.5}}
                         ).evals.knn.every_epochs == 0.625
  assert budget.recorded(config, None) is config
  # A length given outright quarters the NaN periods just the same.
  config.train.num_epochs = 2.0
  assert budget.resolved(config).evals.knn.every_epochs == 0.5


def test_a_length_to_choose_without_a_budget_is_refused(tiny_config):
  tiny_config.train.num_epochs = math.nan
  with pytest.raises(InputError, match='budget_minutes'):
    validate.check(tiny_config)
  tiny_config.train.budget_minutes = -1.0
  with pytest.raises(InputError, match='budget_minutes=-1.0'):
    validate.check(tiny_config)


@pytest.mark.slow
def test_a_budget_run_records_its_length_and_resumes_with_it(
    tiny_config, tmp_path, capsys, monkeypatch, mock_arrays):
  # 50 of the minute gone when the length is chosen: a few seconds, and
  # a few steps, are left.
  monkeypatch.setattr(budget, 'process_seconds', lambda: 50.0)
  config = tiny_config
  config.data.name = mock_arrays
  config.train.budget_minutes = 1.0
  config.train.num_epochs = math.nan
  config.evals.linear_probe.every_epochs = math.nan
  for name in ('knn', 'diagnostics'):
    del config.evals[name]
  config.collapse.num_images = 0  # Only what the budget times: its cost.
  config.train.checkpoint_every_steps = 1000  # The last step's alone.
  results = train.train_and_evaluate(config, str(tmp_path))
  plan = results['budget']
  chosen = results['config']['train']['num_epochs']
  assert chosen == plan['num_epochs'] > 0
  assert results['steps'] == plan['steps'] == int(chosen * 4)  # 64 / 16.
  assert results['config']['evals']['linear_probe']['every_epochs'] == (
      chosen / 4)
  assert plan['per_step'] > 0 and plan['evaluation'] > 0
  # The initial encoder was evaluated (the evaluation's cost) as step 0;
  # the plan counts the final evaluation without the compiling that only
  # the first one did: the final one compiled nothing.
  with open(tmp_path / 'eval' / '0.json') as f:
    first = json.load(f)
  assert 0 <= first['linear_probe_accuracy'] <= 1
  timed = list(first['evals'].values())
  assert {'features', 'linear_probe'} <= set(first['evals'])
  assert plan["evaluation_compile"] > 0
  assert plan['evaluation_compile'] == pytest.approx(
      sum(t['compile_seconds'] for t in timed), abs=2e-3)
  assert plan['evaluation'] == pytest.approx(
      sum(max(0.0, t['seconds'] - t['compile_seconds']) for t in timed),
      abs=2e-3)
  with open(tmp_path / 'eval' / f'{results["steps"]}.json') as f:
    final = json.load(f)['evals']
  assert final['features']['compile_seconds'] == 0
  assert final['linear_probe']['compile_seconds'] == 0
  assert f'--config.train.num_epochs={chosen}' in capsys.readouterr().out
  # The same command again resumes with the recorded length, measuring
  # nothing: no change of settings, no new plan.
  again = train.train_and_evaluate(config, str(tmp_path))
  with open(os.path.join(tmp_path, 'history.json')) as f:
    history = json.load(f)
  assert len(history) == 2 and 'budget' not in history[1]
  assert history[1]['config_changes'] == {}
  assert again['config']['train']['num_epochs'] == chosen
  assert again['budget'] == plan
