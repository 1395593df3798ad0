#!/usr/bin/env bash
# On a CPU machine with the prepared CIFAR-10: what experiments/gpu/run.sh
# needs, in PARTS: the arrays in parts small enough to travel with the
# working tree (the device tool carries 64 MiB in all, the tree itself
# about 8 MB of it), and the wheels of the pure-Python packages an
# accelerator's image may lack (run.sh installs only the missing ones).
#
#   TFDS_DATA_DIR=../shared/tensorflow_datasets bash experiments/gpu/prepare.sh PARTS
set -euo pipefail
parts=$1
python -m ssljax.pack --dataset=cifar10 --parts="$parts" --part_mb=50
# The versions installed here, which the tests ran with.
rm -rf "$parts/wheels"
python -m pip download -q --no-deps --only-binary=:all: -d "$parts/wheels" \
  $(python - <<'PY'
from importlib import metadata
print(' '.join(f'{p}=={metadata.version(p)}' for p in (
    'ml-collections', 'dm-pix', 'chex', 'toolz', 'tensorboardX', 'tqdm')))
PY
)
ls -l "$parts" "$parts/wheels"
