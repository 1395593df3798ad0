"""OUT/summary.json and OUT/summary.png of a run of experiments/gpu/run.sh:
its accuracies against minutes since the run started, the device, the
chosen length and the command.

  python experiments/gpu/summary.py WORKDIR OUT COMMAND
"""
import datetime
import glob
import json
import os
import sys

from ssljax import pictures


def minutes_since(start: str, path: str) -> float:
  """Minutes from the history's start to the file's last write."""
  started = datetime.datetime.strptime(start, '%Y-%m-%d %H:%M:%S %Z').replace(
      tzinfo=datetime.timezone.utc)
  return (os.path.getmtime(path) - started.timestamp()) / 60


def summary(workdir: str, command: str) -> dict:
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  with open(os.path.join(workdir, 'history.json')) as f:
    history = json.load(f)
  curve = []
  for path in glob.glob(os.path.join(workdir, 'eval', '*.json')):
    with open(path) as f:
      evaluation = json.load(f)
    curve.append({'step': evaluation['step'],
                  'minutes': round(minutes_since(history[0]['started'],
                                                 path), 2),
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
      'total_minutes': round(minutes_since(
          history[0]['started'], os.path.join(workdir, 'results.json')), 2),
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
  axis.set(xlabel='minutes since the start', ylabel='test accuracy',
           title=f"vicreg:gpu on {found['device_kind']}")
  axis.grid(alpha=0.3)
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def main(workdir: str, out: str, command: str):
  found = summary(workdir, command)
  with open(os.path.join(out, 'summary.json'), 'w') as f:
    json.dump(found, f, indent=1)
  plot(found, os.path.join(out, 'summary.png'))
  print(json.dumps({k: found[k] for k in ('devices', 'epochs', 'train_minutes',
                                          'total_minutes', 'final')}))


if __name__ == '__main__':
  main(*sys.argv[1:])
