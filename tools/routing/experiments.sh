#!/usr/bin/env bash
# The depth-routing table of docs/depth-routing.md, reproducible: static
# removal of K blocks, MoD routing on every other block at several
# capacities, routing of the least important blocks, each with MoD's KV rule
# (exact) and KV-preserving; routers fitted on WikiText-2 valid. Per variant:
# perplexity, mean KLD and same-top % against the dense model on WikiText-2
# test (routing on every token), the share of (token, block) executions that
# ran there, HellaSwag acc_norm, and pp/tg speed against dense on the test
# text (the two alternated, one after the other, per variant).
#
#   tools/routing/experiments.sh [OUT_DIR]      (default /tmp/sparsefuse-routing)
#
# Environment: MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf), SF
# (build/sparsefuse), STATIC ("4 7"), CAPACITIES ("0.125 0.25 0.5 0.75"),
# AUTO ("8:0.5 14:0.5": N blocks of lowest mean KL at capacity C), TARGET
# (kl), CALIB_TOKENS (2048), CHUNKS (PPL chunks, 10), TASKS (HellaSwag tasks,
# 100; 0 skips), PP (512), TG (128), REPS (3), THREADS (2). Writes
# OUT/results.md and OUT/results.csv; fitted routes and HellaSwag scores are
# kept in OUT, so a rerun only measures what is missing from them.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
OUT="${1:-/tmp/sparsefuse-routing}"
MODEL="${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
SF="${SF:-build/sparsefuse}"
T="${THREADS:-2}"
DATA="$REPO/../shared/data"
CALIB="$DATA/wikitext-2/valid.txt"
TEST="$DATA/wikitext-2/test.txt"
HS="$DATA/hellaswag_val_full.txt.bz2"
CHUNKS="${CHUNKS:-10}"
TASKS="${TASKS:-100}"
PP="${PP:-512}"
TG="${TG:-128}"
REPS="${REPS:-3}"
TARGET="${TARGET:-kl}"
CALIB_TOKENS="${CALIB_TOKENS:-2048}"
mkdir -p "$OUT"
head -c 400000 "$TEST" > "$OUT/test-head.txt" # the speed tests' tokens

speed() { # "pp tg" t/s on the test text, with optional routes arguments
    "$SF" bench -m "$MODEL" -t "$T" -p "$PP" -n "$TG" -r "$REPS" --text "$OUT/test-head.txt" -o json "$@" 2>/dev/null |
        python3 -c 'import json,sys; r={x["test"][:2]: x["tps_mean"] for x in json.load(sys.stdin)}; print("%.2f %.2f" % (r["pp"], r["tg"]))'
}
hellaswag() { # name [routes args]: acc_norm, or "-" (kept in OUT/hs-NAME.txt: a rerun does not repeat it)
    local name="$1"
    shift
    if [ "$TASKS" -le 0 ]; then echo "-"; return; fi
    [ -s "$OUT/hs-$name.txt" ] || "$SF" hellaswag -m "$MODEL" -f "$HS" --tasks "$TASKS" -t "$T" "$@" 2>/dev/null |
        sed -n 's/^Final acc_norm = \([0-9.]*\).*/\1/p' > "$OUT/hs-$name.txt"
    cat "$OUT/hs-$name.txt"
}

echo "== dense ($MODEL)"
[ -f "$OUT/base.kld" ] ||
    "$SF" perplexity -m "$MODEL" -f "$TEST" --chunks "$CHUNKS" -t "$T" --kld-save "$OUT/base.kld" > "$OUT/ppl-dense.txt" 2>&1
PPL0=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$OUT/ppl-dense.txt")
HS0=$(hellaswag dense)
echo "variant,kv,blocks_run,ppl,kld,same_top,hellaswag,pp_dense,pp,tg_dense,tg,pp_ratio,tg_ratio" > "$OUT/results.csv"
{
    echo "| variant | KV | block executions run | PPL | mean KLD | same top % | HellaSwag | pp$PP vs dense | tg$TG vs dense |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    echo "| dense | | 100 % | $PPL0 | 0 | 100 | $HS0 | 1 | 1 |"
} > "$OUT/results.md"
echo "dense,,100,$PPL0,0,100,$HS0,,,,,1,1" >> "$OUT/results.csv"

measure() { # label kv routes.gguf
    local label="$1" kv="$2" routes="$3"
    local args=(--routes "$routes" --route-kv "$kv")
    "$SF" perplexity -m "$MODEL" --kld "$OUT/base.kld" --chunks "$CHUNKS" -t "$T" "${args[@]}" > "$OUT/ppl-$label-$kv.txt" 2>&1
    local f="$OUT/ppl-$label-$kv.txt"
    local ppl kld top run hs d v
    ppl=$(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\).*/\1/p' "$f")
    kld=$(sed -n 's/^Mean *KLD: *\([0-9.]*\).*/\1/p' "$f")
    top=$(sed -n 's/^Same top p: *\([0-9.]*\).*/\1/p' "$f")
    run=$(sed -n 's/^Block executions run: *\([0-9.]*\).*/\1/p' "$f")
    hs=$(hellaswag "${label// /}-$kv" "${args[@]}")
    d=($(speed))
    v=($(speed "${args[@]}"))
    local ppr tgr
    ppr=$(python3 -c "print('%.3f' % (${v[0]} / ${d[0]}))")
    tgr=$(python3 -c "print('%.3f' % (${v[1]} / ${d[1]}))")
    echo "$label,$kv,$run,$ppl,$kld,$top,$hs,${d[0]},${v[0]},${d[1]},${v[1]},$ppr,$tgr" >> "$OUT/results.csv"
    echo "| $label | $kv | $run % | $ppl | $kld | $top | $hs | $ppr | $tgr |" >> "$OUT/results.md"
    echo "   $label $kv: run $run %, PPL $ppl, KLD $kld, top $top, HS $hs, pp x$ppr, tg x$tgr"
}

fit() { # name route-args...
    local name="$1"
    shift
    [ -f "$OUT/$name.gguf" ] || "$SF" route -m "$MODEL" -f "$CALIB" --tokens "$CALIB_TOKENS" -t "$T" \
        --target "$TARGET" -o "$OUT/$name.gguf" "$@" > "$OUT/route-$name.txt" 2> "$OUT/route-$name.err"
}

for k in ${STATIC-4 7}; do
    echo "== static: $k blocks removed"
    fit "static$k" --static "$k"
    measure "static $k" exact "$OUT/static$k.gguf"
done
for c in ${CAPACITIES-0.125 0.25 0.5 0.75}; do
    echo "== every other block at capacity $c"
    fit "every2-c$c" --every 2 --capacity "$c"
    for kv in exact preserve; do measure "every 2, c $c" "$kv" "$OUT/every2-c$c.gguf"; done
done
for a in ${AUTO-8:0.5 14:0.5}; do
    n="${a%%:*}" c="${a##*:}"
    echo "== the $n least important blocks at capacity $c"
    fit "auto$n-c$c" --blocks "auto:$n" --capacity "$c"
    for kv in exact preserve; do measure "auto:$n, c $c" "$kv" "$OUT/auto$n-c$c.gguf"; done
done
echo "== done: $OUT/results.md"
cat "$OUT/results.md"
