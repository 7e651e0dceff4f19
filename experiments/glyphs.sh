#!/usr/bin/env bash
# The glyphs check of datasets/README.md ("What to expect on your own images"): the icons
# recipe, untuned, on a second real image set (tools/data/build_glyphs.py). Each run writes its
# result records into its own folder; the committed copies under results/glyphs/ are those
# folders' results/ and validations.jsonl, and each embedding's PROVENANCE.json.
# Usage: [SEED=<seed>] bash experiments/glyphs.sh <embedding> <shots> <variant> [<out root>]
#   embedding: shipped (the bundled icons backbone, tools/data/embed_images.py)
#              | own (a backbone pretrained on the 40 glyph train classes, the tool's defaults)
#   variant:   leo (--preset=icons_<shots>shot) | baselines | baselines-val
set -euo pipefail
embedding=$1 shots=$2 variant=$3 out=${4:-/tmp/glyphs-study}
python=${PYTHON:-python}
glyphs=$out/glyphs
emb=$out/emb/$embedding
[[ -e $glyphs/glyphs.npz ]] || "$python" -m tools.data.build_glyphs --output_dir="$glyphs"
if [[ ! -e $emb/glyphs/center/test_embeddings.pkl ]]; then
  case $embedding in
    shipped) "$python" -m tools.data.embed_images --images="$glyphs/glyphs.npz" \
               --split="$glyphs/split.json" --dataset_name=glyphs --output_root="$emb" ;;
    own) "$python" -m tools.data.pretrain_embeddings --images="$glyphs/glyphs.npz" \
           --split="$glyphs/split.json" --protocol=paper --dataset_name=glyphs \
           --output_root="$emb" --num_threads=1 ;;
    *) echo "glyphs.sh: unknown embedding $embedding" >&2; exit 2 ;;
  esac
fi
seed=${SEED:-0}
# The icons presets as they were when the committed runs were made: 3,000 steps for both.
flags=(--data_path="$emb" --dataset_name=glyphs --preset=icons_${shots}shot --seed=$seed
       --num_steps_limit=3000)
folder=$out/glyphs_${shots}shot/$embedding-$variant
[[ $variant == leo ]] && folder=$folder-seed$seed
case $variant in
  leo) "$python" runner.py "${flags[@]}" --checkpoint_path="$folder" ;;
  baselines|baselines-val)
    split=test; [[ $variant == baselines-val ]] && split=val
    for baseline in ${BASELINES:-nearest_centroid logistic_regression whitened_nearest_centroid}; do
      "$python" runner.py "${flags[@]}" --baseline=$baseline --eval_split=$split \
        --checkpoint_path="$folder"
    done ;;
  *) echo "glyphs.sh: unknown variant $variant" >&2; exit 2 ;;
esac
