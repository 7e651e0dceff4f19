#!/usr/bin/env bash
# LEO on transformed embeddings (--embedding_transform), on the tasks of the baselines'
# records: RESULTS.md's "When LEO helps" pairs them (experiments/when.sh).
# Usage: [SEEDS="0 1 2"] [TRANSFORMS="center cl2n whiten"] [JOBS=1] \
#          bash experiments/transforms.sh <shots> <out> [runner flags...]
#   one run a seed and transform: runner.py --preset=icons_<shots>shot
#   --embedding_transform=<transform> --seed=<seed> --checkpoint_path=<out>/<transform>-seed<seed>
#   (the runner flags, e.g. --data_path=... --dataset_name=glyphs, win over the preset), its
#   output in <out>/<transform>-seed<seed>.out;
#   JOBS=2: two runs at a time, each on one thread (--intra_op_threads=1).
# The committed copies of a run are its folder's results/ and validations.jsonl.
set -euo pipefail
shots=$1 out=$2
shift 2
python=${PYTHON:-python}
jobs=${JOBS:-1}
cd "$(dirname "$0")/.."
mkdir -p "$out"
flags=(--preset=icons_${shots}shot "$@")
[[ $jobs -gt 1 ]] && flags+=(--intra_op_threads=1)
running=0 failed=0
for transform in ${TRANSFORMS:-center cl2n whiten}; do
  for seed in ${SEEDS:-0 1 2}; do
    if [[ $running -ge $jobs ]]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
    run=$out/$transform-seed$seed
    "$python" runner.py "${flags[@]}" --embedding_transform="$transform" --seed="$seed" \
      --checkpoint_path="$run" > "$run.out" 2>&1 &
    running=$((running + 1))
  done
done
while [[ $running -gt 0 ]]; do
  wait -n || failed=1
  running=$((running - 1))
done
grep -h "^Metatest accuracy" "$out"/*-seed*.out
exit $failed
