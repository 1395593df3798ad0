#!/usr/bin/env bash
# The small experiment behind the hybrid's defaults (configs/vicreg_tico.py):
# the smoke model (ResNet-18 x0.125, 256-d projector, batch 64) for 0.25
# epochs on the real CIFAR-10 less the 5,000 carved validation images, one
# run per option, scored by the linear probe on those validation images
# (data.score_on=validation: the test split is never read). Prints one line
# per run: the option, the validation accuracy, the steps trained.
# Usage: TFDS_DATA_DIR=../shared/tensorflow_datasets bash experiments/hybrid_defaults.sh OUT
set -euo pipefail
out=${1:-/tmp/hybrid_defaults}
run() {
  name=$1; shift
  if [ ! -f "$out/$name/results.json" ]; then
    python -m ssljax.main --config=configs/vicreg_tico.py:smoke --workdir="$out/$name" \
      --config.train.num_epochs=0.25 --config.data.score_on=validation "$@" \
      > "$out/$name.log" 2>&1 || true
  fi
  python - "$out/$name" "$*" <<'PY'
import json, os, sys
path = os.path.join(sys.argv[1], 'results.json')
if not os.path.exists(path):
  with open(sys.argv[1] + '.log') as f:
    why = [l for l in f if l.startswith('ssljax:')] or ['(see the log)']
  print(f'{sys.argv[2]:60s} no result: {why[-1].strip()[:90]}')
  sys.exit()
with open(path) as f:
  results = json.load(f)
assert results['config']['data']['score_on'] == 'validation'
print(f"{sys.argv[2]:60s} {results['eval_summary']['linear_probe_accuracy']:.4f} "
      f"{results['steps']} steps")
PY
}
mkdir -p "$out"
run nu0 --config.method.nu=0 --config.method.normalize=True
run nu8 --config.method.nu=8 --config.method.normalize=True
run nu8_both --config.method.nu=8 --config.method.both_branches=True --config.method.normalize=True
run nu24 --config.method.nu=24 --config.method.normalize=True
run nu64 --config.method.nu=64 --config.method.normalize=True
run nu0.003_raw --config.method.nu=0.003 --config.method.normalize=False
run nu0.01_raw --config.method.nu=0.01 --config.method.normalize=False
run nu0.03_raw --config.method.nu=0.03 --config.method.normalize=False
run nu0.01_raw_both --config.method.nu=0.01 --config.method.both_branches=True --config.method.normalize=False
