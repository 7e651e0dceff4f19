#!/usr/bin/env bash
# RESULTS.md's "When LEO helps", from the committed result records: one row per data setting
# (tools/helps.py) into results/when_leo_helps.md, and the figure of the icons 1-shot study
# with its paired panel (tools/compare.py --plot). Usage: bash results/when.sh
set -euo pipefail
python=${PYTHON:-python}
cd "$(dirname "$0")/.."
# The records of the given files and folders, comma-separated, as tools/helps.py takes them.
join() { local IFS=,; echo "$*"; }
rows=(
  "icons (in-domain)=$(join results/icons_1shot/tuned6000-seed* results/icons_1shot/baselines)"
  "icons (in-domain)=$(join results/icons_5shot/tuned-seed* results/icons_5shot/baselines)"
  "glyphs, icons backbone (another domain)=$(join results/glyphs_1shot/shipped-leo-seed* \
    results/glyphs_1shot/shipped-baselines)"
  "glyphs, own backbone=$(join results/glyphs_1shot/own-leo-seed* \
    results/glyphs_1shot/own-baselines)"
  # A model meta-trained on icons, and baselines fitted on icons, tested on glyphs (icons
  # backbone); nearest centroid and logistic regression fit each task alone: the glyphs'.
  "icons -> glyphs (cross-domain)=$(join results/cross_1shot/icons-model-on-glyphs \
    results/cross_1shot/icons-baselines \
    results/glyphs_1shot/shipped-baselines/results/{nearest_centroid,logistic_regression}-*)"
)
for shots in 5; do
  [[ -e results/cross_${shots}shot/icons-model-on-glyphs ]] || continue
  rows+=("icons -> glyphs (cross-domain)=$(join results/cross_${shots}shot/icons-model-on-glyphs \
    results/cross_${shots}shot/icons-baselines \
    results/glyphs_${shots}shot/shipped-baselines/results/{nearest_centroid,logistic_regression}-*)")
done
"$python" -m tools.helps "${rows[@]}" > results/when_leo_helps.md
"$python" -m tools.compare results/icons_1shot/tuned6000-seed* results/icons_1shot/baselines \
  results/icons_1shot/baselines-val --plot=results/when_leo_helps_icons.png > /dev/null
"$python" -m tools.compare results/glyphs_1shot/shipped-leo-seed* \
  results/glyphs_1shot/shipped-baselines results/glyphs_1shot/shipped-baselines-val \
  --plot=results/when_leo_helps_glyphs.png > /dev/null
