"""OUT/summary.json and OUT/summary.png of a run of experiments/gpu/run.sh:
its accuracies against minutes since the training command started, the
device, the chosen length and the command.

  python experiments/gpu/summary.py WORKDIR OUT COMMAND STARTED

STARTED: the training command's start, in seconds since the epoch (run.sh
records it just before the command).
"""
import glob
import json
import os
import sys

from ssljax import pictures


def summary(workdir: str, command: str, started: float) -> dict:
  """The run's numbers; each evaluation at the minutes since the training
  command `started` (its start-up and data loading included) when its JSON
  was written."""
  results_path = os.path.join(workdir, 'results.json')
  with open(results_path) as f:
    results = json.load(f)
  curve = []
  for path in glob.glob(os.path.join(workdir, 'eval', '*.json')):
    with open(path) as f:
      evaluation = json.load(f)
    curve.append({'step': evaluation['step'],
                  'minutes': round((os.path.getmtime(path) - started) / 60, 2),
                  **{k: evaluation[k] for k in ('knn_accuracy',
                                                'linear_probe_accuracy')
                     if k in evaluation}})
  return {
      'devices': results['devices'],
      'device_kind': results['provenance']['device_kind'],
      'git': results['provenance']['git'],
      'command': command,
      'budget': results['budget'],
      'steps': results['steps'], 'epochs': round(results['epochs'], 2),
      'train_minutes': round(results['train_seconds'] / 60, 2),
      'total_minutes': round(
          (os.path.getmtime(results_path) - started) / 60, 2),
      'final': results['eval_summary'],
      'curve': sorted(curve, key=lambda point: point['step']),
  }


def plot(found: dict, path: str):
  plt = pictures.pyplot()
  if plt is None:
    return
  figure, axis = plt.subplots(figsize=(6, 4))
  for key, label in (('knn_accuracy', 'kNN'),
                     ('linear_probe_accuracy', 'linear probe')):
    points = [(p['minutes'], p[key]) for p in found['curve'] if key in p]
    if points:
      axis.plot(*zip(*points), marker='o', label=label)
  axis.set(xlabel='minutes since the command started', ylabel='test accuracy',
           title=f"vicreg:gpu on {found['device_kind']}")
  axis.grid(alpha=0.3)
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def main(workdir: str, out: str, command: str, started: str):
  found = summary(workdir, command, float(started))
  with open(os.path.join(out, 'summary.json'), 'w') as f:
    json.dump(found, f, indent=1)
  plot(found, os.path.join(out, 'summary.png'))
  print(json.dumps({k: found[k] for k in ('devices', 'epochs', 'train_minutes',
                                          'total_minutes', 'final')}))


if __name__ == '__main__':
  main(*sys.argv[1:])
