#!/usr/bin/env bash
# RESULTS.md's "When LEO helps", from the committed result records: one row per data setting,
# task shape and LEO's input, --embedding_transform (tools/study/helps.py), into
# results/when_leo_helps.md, and the figures of icons and glyphs (icons backbone), 1-shot,
# with their paired panels (tools/study/compare.py --plot).
# Usage: bash experiments/when.sh
set -euo pipefail
python=${PYTHON:-python}
cd "$(dirname "$0")/.."
# The records of the given files and folders, comma-separated, as tools/study/helps.py takes them.
join() { local IFS=,; echo "$*"; }
rows=()
for shots in 1 5; do
  icons=(results/icons_${shots}shot/tuned6000-seed*)
  [[ -e ${icons[0]} ]] || icons=(results/icons_${shots}shot/tuned-seed*)  # 5-shot's preset.
  rows+=("icons (in-domain)=$(join "${icons[@]}" results/icons_${shots}shot/baselines)")
  # LEO on transformed embeddings (experiments/transforms.sh), on the baselines' tasks.
  for transform in center cl2n whiten; do
    leo=(results/icons_${shots}shot/$transform-seed*)
    [[ -e ${leo[0]} ]] || continue
    rows+=("icons (in-domain)=$(join "${leo[@]}" results/icons_${shots}shot/baselines)")
  done
  for embedding in shipped own; do
    leo=(results/glyphs_${shots}shot/$embedding-leo-seed*)
    [[ -e ${leo[0]} ]] || continue
    label="glyphs, icons backbone (another domain)"
    [[ $embedding == own ]] && label="glyphs, own backbone"
    rows+=("$label=$(join "${leo[@]}" results/glyphs_${shots}shot/$embedding-baselines)")
    for transform in center cl2n whiten; do
      leo=(results/glyphs_${shots}shot/$embedding-$transform-seed*)
      [[ -e ${leo[0]} ]] || continue
      rows+=("$label=$(join "${leo[@]}" results/glyphs_${shots}shot/$embedding-baselines)")
    done
  done
  # A model meta-trained on icons, and baselines fitted on icons, tested on glyphs (icons
  # backbone); nearest centroid and logistic regression fit each task alone: the glyphs'.
  cross=results/cross_${shots}shot
  [[ -e $cross/icons-model-on-glyphs ]] || continue
  rows+=("icons -> glyphs (cross-domain)=$(join $cross/icons-model-on-glyphs \
    $cross/icons-baselines results/glyphs_${shots}shot/shipped-baselines/results/{nearest_centroid,logistic_regression}-*)")
done
"$python" -m tools.study.helps "${rows[@]}" > results/when_leo_helps.md
"$python" -m tools.study.compare results/icons_1shot/tuned6000-seed* results/icons_1shot/baselines \
  results/icons_1shot/baselines-val --plot=results/when_leo_helps_icons.png > /dev/null
"$python" -m tools.study.compare results/glyphs_1shot/shipped-leo-seed* \
  results/glyphs_1shot/shipped-baselines results/glyphs_1shot/shipped-baselines-val \
  --plot=results/when_leo_helps_glyphs.png > /dev/null
