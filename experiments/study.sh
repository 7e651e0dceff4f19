#!/usr/bin/env bash
# The icons study of RESULTS.md: every LEO variant and both baselines, 5-way 1-shot and
# 5-shot, on identical test tasks per seed. Each run writes its result records into its own
# folder; the committed copies under results/ are those folders' results/ and
# validations.jsonl (and versions.json, which says at which leo commits a run was trained). Usage: bash experiments/study.sh <shots> <variant> <seed> [<out root>]
#   variant: defaults | tuned | tuned_train_on_val | tuned6000 | baselines | baselines-val
set -euo pipefail
shots=$1 variant=$2 seed=$3 out=${4:-/tmp/study}
python=${PYTHON:-python}
preset=icons_${shots}shot
folder=$out/icons_${shots}shot/$variant-seed$seed
case $variant in
  # The original's defaults, trained as long as the presets (3,000 steps, validated every 500).
  defaults) flags=(--dataset_name=icons --num_tr_examples_per_class=$shots
                   --num_steps_limit=3000 --checkpoint_steps=500) ;;
  # The tuning study's best trial as long as its trials ran (the presets held 3,000 steps then).
  tuned) flags=(--preset=$preset --num_steps_limit=3000) ;;
  tuned_train_on_val) flags=(--preset=$preset --num_steps_limit=3000 --train_on_val) ;;
  # The same trained to 6,000 steps (the 1-shot preset since), in one piece.
  tuned6000) flags=(--preset=$preset --num_steps_limit=6000) ;;
  baselines|baselines-val) folder=$out/icons_${shots}shot/$variant split=test
    [[ $variant == baselines-val ]] && split=val
    for baseline in ${BASELINES:-nearest_centroid logistic_regression whitened_nearest_centroid}; do
      "$python" runner.py --preset=$preset --seed=$seed --baseline=$baseline \
        --eval_split=$split --checkpoint_path=$folder
    done
    exit 0 ;;
  *) echo "study.sh: unknown variant $variant" >&2; exit 2 ;;
esac
"$python" runner.py "${flags[@]}" --seed=$seed --checkpoint_path=$folder
