# Runs one round of the proxy sweep as NUM_WORKERS processes sharing one
# accelerator; prints the RESULT lines sorted by tag.
#   bash experiments/proxy_sweep/run.sh SUBSET.npz ROUND.json NUM_WORKERS LOGDIR
set -e
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 PYTHONPATH=.
mkdir -p "$4"
for w in $(seq 0 $(($3 - 1))); do
  python3 experiments/proxy_sweep/sweep.py "$1" "$2" "$w" "$3" > "$4/log$w.txt" 2>&1 &
done
wait
grep -h '^RESULT' "$4"/log*.txt | sed 's/^RESULT //' | sort
