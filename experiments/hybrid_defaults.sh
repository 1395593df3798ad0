#!/usr/bin/env bash
# The small experiment behind the hybrid's defaults (configs/vicreg_tico.py):
# the smoke model (ResNet-18 x0.125, 256-d projector, batch 64) for 0.25
# epochs (195 steps) on the real CIFAR-10, one run per option, then the
# full-test-set linear probe. Prints one line per run.
# Usage: TFDS_DATA_DIR=../shared/tensorflow_datasets bash experiments/hybrid_defaults.sh OUT
set -euo pipefail
out=${1:-/tmp/hybrid_defaults}
run() {
  name=$1; shift
  echo "== $name $*"
  if [ -f "$out/$name/results.json" ]; then
    grep -m1 '"test_accuracy"' "$out/$name/results.json"; return
  fi
  python -m ssljax.main --config=configs/vicreg_tico.py:smoke --workdir="$out/$name" \
    --config.train.num_epochs=0.25 "$@" 2>&1 | grep -E '^(step 195|ssljax)' || true
}
run nu8 --config.method.nu=8 --config.method.normalize=True
run nu64 --config.method.nu=64 --config.method.normalize=True
run nu0 --config.method.nu=0 --config.method.normalize=True
run nu24 --config.method.nu=24 --config.method.normalize=True
run nu8_both --config.method.nu=8 --config.method.both_branches=True --config.method.normalize=True
run nu0.01_raw --config.method.nu=0.01 --config.method.normalize=False
