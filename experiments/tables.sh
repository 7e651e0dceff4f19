#!/usr/bin/env bash
# The tables and figures of RESULTS.md, from the committed result records: one table per LEO
# variant against the baselines on the same test tasks (tools/study/compare.py pairs them).
set -euo pipefail
python=${PYTHON:-python}
cd "$(dirname "$0")/.."
for shots in 1 5; do
  root=results/icons_${shots}shot
  for variant in defaults tuned tuned_train_on_val tuned6000; do
    runs=("$root"/$variant-seed*)
    [[ -e ${runs[0]} ]] || continue
    "$python" -m tools.study.compare "${runs[@]}" "$root/baselines" --output="$root/$variant.md" \
      --plot="$root/$variant.png"
  done
done
# Tuned against defaults, seed by seed on the same test tasks (both rows are method "leo").
"$python" -m tools.study.compare results/icons_1shot/defaults-seed* results/icons_1shot/tuned-seed* \
  --output=results/icons_1shot/tuned_vs_defaults.md
# The glyphs check (datasets/README.md, experiments/glyphs.sh): LEO with the icons presets against
# the baselines, per embedding (the shipped icons backbone, or one pretrained on the glyphs).
for shots in 1 5; do
  root=results/glyphs_${shots}shot
  for embedding in shipped own; do
    runs=("$root"/$embedding-leo-seed*)
    [[ -e ${runs[0]} ]] || continue
    "$python" -m tools.study.compare "${runs[@]}" "$root/$embedding-baselines" \
      --output="$root/$embedding.md" --plot="$root/$embedding.png"
  done
done
