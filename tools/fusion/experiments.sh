#!/usr/bin/env bash
# The FFN Fusion results of docs/ffn-fusion.md, reproducible: analysis of the
# default model on WikiText-2 valid, variants (attention drops; + fusion;
# + healing; whole-block parallelization with 1, 2, 3 groups), and one
# comparison table on WikiText-2 test + HellaSwag + speed.
#
#   tools/fusion/experiments.sh [OUT_DIR]      (default /tmp/sparsefuse-fusion)
#
# Environment: MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf),
# SF (build/sparsefuse), K (attention sub-blocks to drop, default 8),
# TOKENS (analysis tokens, 512), CHUNKS (PPL chunks, 20), TASKS (HellaSwag, 200),
# THREADS (2), REUSE_ANALYSIS (set: keep an existing OUT/analysis). Takes ~15-20 minutes on 2 cores.
# A gemma3 model (post-norms) gets no folded-norm and no healed variant: its
# fusion groups run as parallel FFN-only blocks (docs/ffn-fusion.md).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
OUT="${1:-/tmp/sparsefuse-fusion}"
MODEL="${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
SF="${SF:-build/sparsefuse}"
K="${K:-8}"
T="${THREADS:-2}"
DATA="$REPO/../shared/data"
CALIB="$DATA/wikitext-2/valid.txt"
TEST="$DATA/wikitext-2/test.txt"
HS="$DATA/hellaswag_val_full.txt.bz2"
mkdir -p "$OUT"

echo "== analysis ($MODEL, ${TOKENS:-512} tokens of WikiText-2 valid)"
if [ -n "${REUSE_ANALYSIS:-}" ] && [ -f "$OUT/analysis/analysis.json" ]; then
    echo "(reusing $OUT/analysis)"
else
    "$SF" analyze -m "$MODEL" -f "$CALIB" --tokens "${TOKENS:-512}" -t "$T" -o "$OUT/analysis"
fi

echo "== variants"
ARCH=$("$SF" inspect -m "$MODEL" 2>/dev/null | sed -n 's/^ *architecture *"\(.*\)"$/\1/p')
POST_NORMS=0
[ "$ARCH" = gemma3 ] && POST_NORMS=1
V=("$OUT/drop$K.gguf" "$OUT/drop$K-fuse.gguf")
"$SF" fuse -m "$MODEL" -a "$OUT/analysis" --drop-attn "auto:$K" -o "$OUT/drop$K.gguf"
"$SF" fuse -m "$MODEL" -a "$OUT/analysis" --drop-attn "auto:$K" --fuse auto -o "$OUT/drop$K-fuse.gguf"
if [ "$POST_NORMS" = 0 ]; then
    "$SF" fuse -m "$MODEL" -a "$OUT/analysis" --drop-attn "auto:$K" --fuse auto --norm folded \
        -o "$OUT/drop$K-fuse-folded.gguf"
    "$SF" fuse -m "$MODEL" -a "$OUT/analysis" --drop-attn "auto:$K" --fuse auto --heal "$CALIB" \
        --heal-tokens 4096 -t "$T" -o "$OUT/drop$K-fuse-heal.gguf"
    V+=("$OUT/drop$K-fuse-folded.gguf" "$OUT/drop$K-fuse-heal.gguf")
fi
for g in 1 2 3; do
    "$SF" fuse -m "$MODEL" -a "$OUT/analysis" --parallel-blocks "auto:$g" -o "$OUT/parallel$g.gguf"
    V+=("$OUT/parallel$g.gguf")
done

echo "== comparison (WikiText-2 test, HellaSwag, speed)"
MS=(-m "$MODEL")
for v in "${V[@]}"; do MS+=(-m "$v"); done
"$SF" compare "${MS[@]}" \
    -f "$TEST" --chunks "${CHUNKS:-20}" --hellaswag "$HS" --tasks "${TASKS:-200}" -r 3 -t "$T" \
    --csv "$OUT/results.csv" | tee "$OUT/results.md"
echo "== done: $OUT/results.md, $OUT/analysis/index.html"
