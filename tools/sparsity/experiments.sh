#!/usr/bin/env bash
# The contextual-sparsity table of docs/sparsity.md, reproducible: for each
# method and level, a side-car calibrated on WikiText-2 valid; perplexity,
# mean KLD and same-top % against the dense model on WikiText-2 test (sparse
# on the scored half of each chunk); decode speed (tg) against dense, the two
# alternated; optionally HellaSwag acc_norm.
#
#   tools/sparsity/experiments.sh [OUT_DIR]      (default /tmp/sparsefuse-sparsity)
#
# Environment: MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf),
# SF (build/sparsefuse), METHODS ("teal cats wina"), LEVELS ("0.25 0.4 0.5";
# a level may be auto:KLD, e.g. LEVELS="auto:0.1 auto:0.19"), CORRECT (none,
# mean or ls: sparsify --correct-down; default none),
# CALIB_TOKENS (4096), CHUNKS (PPL chunks, 10), TG (tokens, 64), REPS (2),
# TASKS (HellaSwag tasks, 0 = skip; every token of a task runs sparse, so it
# is slow), WT_TYPE (transposed-matrix type, default: chosen per tensor),
# THREADS (2), SPEED_ONLY (set: no perplexity/KLD, e.g. for synthetic models,
# whose random weights make quality numbers meaningless). Writes
# OUT/results.md and OUT/results.csv.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
OUT="${1:-/tmp/sparsefuse-sparsity}"
MODEL="${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
SF="${SF:-build/sparsefuse}"
T="${THREADS:-2}"
DATA="$REPO/../shared/data"
CALIB="$DATA/wikitext-2/valid.txt"
TEST="$DATA/wikitext-2/test.txt"
HS="$DATA/hellaswag_val_full.txt.bz2"
CHUNKS="${CHUNKS:-10}"
TG="${TG:-64}"
REPS="${REPS:-2}"
TASKS="${TASKS:-0}"
WT=()
[ -n "${WT_TYPE:-}" ] && WT=(--wt-type "$WT_TYPE")
WT+=(--correct-down "${CORRECT:-none}")
mkdir -p "$OUT"

tg() { # tg t/s of MODEL with optional side-car
    "$SF" bench -m "$MODEL" -t "$T" -p 0 -n "$TG" -r "$REPS" -o json "$@" 2>/dev/null |
        python3 -c 'import json,sys; print("%.2f" % [r for r in json.load(sys.stdin) if r["test"].startswith("tg")][0]["tps_mean"])'
}
hellaswag() { # acc_norm, or "-"
    if [ "$TASKS" -gt 0 ]; then
        "$SF" hellaswag -m "$MODEL" -f "$HS" --tasks "$TASKS" -t "$T" "$@" 2>/dev/null | sed -n 's/^Final acc_norm = \([0-9.]*\).*/\1/p'
    else echo "-"; fi
}

echo "== dense ($MODEL)"
PPL0=-
if [ -z "${SPEED_ONLY:-}" ]; then
    "$SF" perplexity -m "$MODEL" -f "$TEST" --chunks "$CHUNKS" -t "$T" --kld-save "$OUT/base.kld" > "$OUT/ppl-dense.txt" 2>&1
    PPL0=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$OUT/ppl-dense.txt")
fi
HS0=$(hellaswag)
echo "method,level,ppl,kld,same_top,hellaswag,tg_dense,tg_sparse,speedup,mib_per_token,hidden_active,in_active" > "$OUT/results.csv"
{
    echo "| method | level | PPL | mean KLD | same top % | HellaSwag | tg dense t/s | tg sparse t/s | speedup | MiB read/token | active neurons | active inputs |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    echo "| dense | 0 | $PPL0 | 0 | 100 | $HS0 | | | | | | |"
} > "$OUT/results.md"

for meth in ${METHODS:-teal cats wina}; do
    for s in ${LEVELS:-0.25 0.4 0.5}; do
        side="$OUT/$meth-$s.gguf"
        echo "== $meth $s"
        "$SF" sparsify -m "$MODEL" -f "$CALIB" --method "$meth" --sparsity "$s" --tokens "${CALIB_TOKENS:-4096}" \
            -t "$T" "${WT[@]}" -o "$side" > "$OUT/$meth-$s.sparsify.txt"
        ppl=- kld=- top=-
        if [ -z "${SPEED_ONLY:-}" ]; then
            "$SF" perplexity -m "$MODEL" -f "$TEST" --chunks "$CHUNKS" -t "$T" --kld "$OUT/base.kld" --sparse "$side" \
                > "$OUT/ppl-$meth-$s.txt" 2>&1
            ppl=$(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\).*/\1/p' "$OUT/ppl-$meth-$s.txt")
            kld=$(sed -n 's/^Mean    KLD: *\([0-9.]*\).*/\1/p' "$OUT/ppl-$meth-$s.txt")
            top=$(sed -n 's/^Same top p: *\([0-9.]*\).*/\1/p' "$OUT/ppl-$meth-$s.txt")
        fi
        hs=$(hellaswag --sparse "$side")
        # speed: dense, sparse, dense, sparse (alternated); medians of the two each
        d1=$(tg); s1=$(tg --sparse "$side"); d2=$(tg); s2=$(tg --sparse "$side")
        info=$("$SF" bench -m "$MODEL" -t "$T" -p 0 -n 16 -r 1 --sparse "$side" 2>/dev/null | grep "sparse decode" || true)
        mib=$(echo "$info" | sed -n 's/.*: \([0-9.]*\) MiB.*/\1/p')
        hid=$(echo "$info" | sed -n 's/.*neurons \([0-9.]*\) %.*/\1/p')
        inp=$(echo "$info" | sed -n 's/.*input channels \([0-9.]*\) %.*/\1/p')
        read -r dm sm sp < <(python3 -c "import statistics as s; d=s.median([$d1,$d2]); q=s.median([$s1,$s2]); print('%.2f %.2f %.3f' % (d, q, q/d))")
        echo "$meth,$s,$ppl,$kld,$top,$hs,$dm,$sm,$sp,$mib,$hid,${inp:--}" >> "$OUT/results.csv"
        echo "| $meth | $s | $ppl | $kld | $top | $hs | $dm | $sm | $sp | $mib | $hid | ${inp:--} |" >> "$OUT/results.md"
        tail -1 "$OUT/results.md"
    done
done
cat "$OUT/results.md"
