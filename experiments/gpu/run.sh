#!/usr/bin/env bash
# The one command for a lent GPU: an accuracy against minutes of training.
#
#   bash experiments/gpu/run.sh PARTS MINUTES OUT [--config.KEY=VALUE ...]
#
# PARTS holds what `experiments/gpu/prepare.sh PARTS` wrote on a CPU machine
# (the dataset's arrays in parts, the wheels of what the image may lack).
# Run from the repository root, on an image with JAX (CUDA) and no
# TensorFlow or TFDS: checks the devices, installs the carried wheels of
# the modules missing there, puts the arrays together, trains
# `vicreg.py:gpu` for the length that fits MINUTES (`ssljax.budget`), with
# kNN at each quarter and the linear probe at the end, and writes
# OUT/summary.json (accuracy against minutes) and OUT/summary.png.
# The extra flags override the config (the CPU dry run shrinks the model).
set -euo pipefail
if [ $# -lt 3 ] || [ ! -f ssljax/main.py ]; then
  echo "usage, from the repository root: bash experiments/gpu/run.sh PARTS MINUTES OUT [--config.KEY=VALUE ...]" >&2
  exit 2
fi
command="bash experiments/gpu/run.sh $(printf '%q ' "$@")"
parts=$1 minutes=$2 out=$3
shift 3
if [ -e "$out/run" ]; then  # It would resume that run, not train anew.
  echo "$out/run exists: give another OUT" >&2
  exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
python - <<'PY'
import importlib.util, jax
print('devices:', jax.devices())
missing = [m for m in ('ml_collections', 'dm_pix', 'chex', 'toolz',
                       'tensorboardX', 'tqdm', 'orbax', 'matplotlib')
           if importlib.util.find_spec(m) is None]
print('missing before the wheels:', missing or 'none')
PY
if compgen -G "$parts/wheels/*.whl" > /dev/null; then
  # Only what is missing: the image's own packages stay as they are.
  python - "$parts/wheels" <<'PY' | xargs -r -d '\n' python -m pip install -q --no-index --no-deps
import glob, importlib.util, os, sys
MODULE = {'tensorboardx': 'tensorboardX'}  # Where it is not the wheel's name.
for wheel in sorted(glob.glob(os.path.join(sys.argv[1], '*.whl'))):
  name = os.path.basename(wheel).split('-')[0]
  if importlib.util.find_spec(MODULE.get(name.lower(), name)) is None:
    print(wheel)
PY
fi
python -m ssljax.pack --unpack --parts="$parts" --arrays="$out/arrays"
started=$(date +%s.%N)
python -m ssljax.main --config=configs/vicreg.py:gpu \
  --config.data.name="arrays:$out/arrays" \
  --config.train.budget_minutes="$minutes" --config.train.num_epochs=nan \
  --config.evals.knn.every_epochs=nan --config.evals.linear_probe.every_epochs=0 \
  --workdir="$out/run" "$@"
python experiments/gpu/summary.py "$out/run" "$out" "$command" "$started"
