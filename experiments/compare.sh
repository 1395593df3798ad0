#!/usr/bin/env bash
# One command for the comparison of the seven joint-embedding methods: trains
# and probes each with the same preset (the same data, augmentation pipeline,
# train step and linear probe; each method's own recipe), plus the randomly
# initialised encoder, then prints a Markdown table from the results.json
# files. Finished runs are kept and not repeated; unfinished ones resume.
# Usage: TFDS_DATA_DIR=../shared/tensorflow_datasets bash experiments/compare.sh PRESET OUT [--config.KEY=VALUE ...]
set -euo pipefail
preset=${1:-smoke}
out=${2:-/tmp/ssljax_compare_$preset}
shift $(( $# < 2 ? $# : 2 ))
python=${PYTHON:-python}
methods="vicreg tico vicreg_tico barlow_twins simclr byol simsiam"
for m in $methods; do
  [ -f "$out/$m/results.json" ] || "$python" -m ssljax.main \
      --config="configs/$m.py:$preset" --workdir="$out/$m" "$@"
done
[ -f "$out/random/results.json" ] || "$python" -m ssljax.main \
    --config="configs/vicreg.py:$preset" --workdir="$out/random" \
    --config.train.num_epochs=0 "$@"
"$python" - "$out" random $methods <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
print('| method | test accuracy | epochs | training (min) | total (min) | normalised embedding std (last log) |')
print('|---|---|---|---|---|---|')
for name in names:
  with open(f'{out}/{name}/results.json') as f:
    r = json.load(f)
  std = r.get('last_logged_train_metrics', {}).get('normalized_embedding_std')
  print(f"| {name} | {r['evals']['linear_probe']['test_accuracy']:.4f} | {r['epochs']:.2f} | "
        f"{r['train_seconds_this_run'] / 60:.1f} | "
        f"{r['total_seconds_this_run'] / 60:.1f} | "
        f"{'-' if std is None else f'{std:.4f}'} |")
PY
