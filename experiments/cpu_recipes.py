"""Accuracy against wall time for finished runs: the table and the plot of
experiments/results/cpu_recipes.md.

    python experiments/cpu_recipes.py --out=experiments/results/cpu_recipes \
        NAME=WORKDIR [NAME=WORKDIR ...]

Per run: method, preset, epochs, the run's time (results.json's
`total_seconds_this_run`: from the start of training's set-up, data
loading, compilation, the probes taken while training and the final
evaluation included; the process's own start-up before it, a few seconds,
is not, which `/usr/bin/time` adds), and the final standard probe,
multi-scale probe (with its feature dimension) and kNN accuracies. The
plot shows the probe accuracies logged during training
(`evals.<probe>.every_epochs`) and at the end against minutes since that
start. Writes OUT.png and prints the markdown table.
"""
import argparse
import json
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from ssljax.workdir.events import scalar_events  # pylint: disable=g-import-not-at-top

PROBES = {'linear_probe/test_accuracy': 'standard probe',
          'multiscale_probe/test_accuracy': 'multi-scale probe'}


def run_summary(name: str, workdir: str) -> dict:
  results_path = os.path.join(workdir, 'results.json')
  with open(results_path) as f:
    results = json.load(f)
  if len(results['history']) != 1:
    raise SystemExit(f"{workdir} was started {len(results['history'])} "
                     "times; its time is not one run's.")
  seconds = results['total_seconds_this_run']
  # results.json is written last, right after the final evaluation.
  started = os.path.getmtime(results_path) - seconds
  events = scalar_events(workdir)
  curves = {label: sorted((t - started, v) for t, _, v in events.get(tag, []))
            for tag, label in PROBES.items()}
  summary = results['eval_summary']
  return {
      'name': name, 'method': results['method'],
      'preset': results['config']['preset'], 'epochs': results['epochs'],
      'minutes': seconds / 60, 'curves': curves,
      'probe': summary.get('linear_probe_accuracy'),
      'multiscale': summary.get('multiscale_probe_accuracy'),
      'multiscale_dim': summary.get('multiscale_feature_dim'),
      'feature_dim': summary.get('feature_dim'),
      'knn': summary.get('knn_accuracy'),
  }


def fmt(value: float | None) -> str:
  return '-' if value is None else f'{value:.4f}'


def table(runs: list[dict]) -> str:
  lines = ['| run | method | preset | epochs | minutes | probe (dim) | '
           'multi-scale probe (dim) | kNN |', '|---' * 8 + '|']
  for r in runs:
    lines.append(
        f"| {r['name']} | {r['method']} | {r['preset']} | {r['epochs']:.1f} "
        f"| {r['minutes']:.1f} | {fmt(r['probe'])} ({r['feature_dim']}) | "
        f"{fmt(r['multiscale'])} ({r['multiscale_dim'] or '-'}) | "
        f"{fmt(r['knn'])} |")
  return '\n'.join(lines)


def plot(runs: list[dict], path: str):
  figure, axis = plt.subplots(figsize=(10.5, 5))
  for i, r in enumerate(runs):
    for (label, curve), style in zip(r['curves'].items(), ('-o', '--s')):
      if curve:
        axis.plot([t / 60 for t, _ in curve], [v for _, v in curve], style,
                  color=f'C{i}', label=f"{r['name']}, {label}")
  axis.axhline(0.764, color='gray', linestyle=':',
               label='k-means features (Coates et al. 2011), 0.764 in ~26 min')
  axis.set_xlabel('minutes since the run started (2-core CPU)')
  axis.set_ylabel('CIFAR-10 test accuracy (full test set)')
  axis.grid(alpha=0.3)
  axis.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1))
  figure.tight_layout()
  figure.savefig(path, dpi=120)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('runs', nargs='+', help='NAME=WORKDIR')
  parser.add_argument('--out', required=True, help='OUT.png is written.')
  args = parser.parse_args()
  runs = [run_summary(*spec.split('=', 1)) for spec in args.runs]
  plot(runs, args.out + '.png')
  print(table(runs))


if __name__ == '__main__':
  main()
