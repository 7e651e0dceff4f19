#!/usr/bin/env bash
# Does LEO help on these embeddings? The baselines and LEO on identical tasks, seed by seed,
# and the table of paired differences (RESULTS.md, "When LEO helps", reads it).
# Usage: [SEEDS="0 1 2"] [TRIALS=<n>] [MODEL=<run folder>] \
#          bash experiments/helps.sh <data_path> <dataset_name> <shots> <out> [runner flags...]
#   every baseline on the test split for each seed, and on validation (seed 0);
#   LEO with --preset=icons_<shots>shot for each seed, or, with TRIALS=n, with the best flags
#     of an n-trial tools/tune.py study on the validation classes (3,000 steps a trial);
#   MODEL: also a LEO trained elsewhere (a run folder), tested on these embeddings (its
#     records: <out>/model/results);
#   then tools/study/compare.py's table (<out>/helps.md) and figure (<out>/helps.png), paired
#   against LEO, with each method's difference from nearest centroid in the figure.
# The runner flags go to every command (e.g. --num_test_tasks=2000 for a quick look).
set -euo pipefail
data_path=$1 dataset=$2 shots=$3 out=$4
shift 4
python=${PYTHON:-python}
seeds=${SEEDS:-0 1 2}
data=(--data_path="$data_path" --dataset_name="$dataset" --preset=icons_${shots}shot "$@")
baselines=$("$python" -c 'import config; print(" ".join(config.BASELINES[1:]))')
for seed in $seeds; do
  for baseline in $baselines; do
    "$python" runner.py "${data[@]}" --seed="$seed" --baseline="$baseline" \
      --checkpoint_path="$out/baselines"
  done
done
for baseline in $baselines; do
  "$python" runner.py "${data[@]}" --baseline="$baseline" --eval_split=val \
    --checkpoint_path="$out/baselines-val"
done
leo=("${data[@]}")
if [[ ${TRIALS:-0} -gt 0 ]]; then  # Chosen on validation; the test split is never run.
  "$python" -m tools.tune --study_dir="$out/tune" --num_trials="$TRIALS" \
    --num_steps_limit=3000 --checkpoint_steps=500 -- "${data[@]}"
  leo=(--flagfile="$out/tune/best_flags.txt" "$@")
fi
for seed in $seeds; do
  "$python" runner.py "${leo[@]}" --seed="$seed" --checkpoint_path="$out/leo-seed$seed"
done
models=()
if [[ -n ${MODEL:-} ]]; then
  # Into <out>: not $MODEL/results (its own evaluations), nor a temporary folder (a shipped
  # model's default).
  for seed in $seeds; do
    "$python" runner.py --evaluation_mode --checkpoint_path="$MODEL" --seed="$seed" \
      --eval_data_path="$data_path" --eval_dataset_name="$dataset" \
      --results_path="$out/model/results" "$@"
  done
  models=("$out/model")
fi
"$python" -m tools.study.compare "$out"/leo-seed* "$out/baselines" "$out/baselines-val" \
  "${models[@]}" --output="$out/helps.md" --plot="$out/helps.png"
