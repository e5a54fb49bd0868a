#!/usr/bin/env bash
# Speed of routed variants against dense in one run: pp and tg on text
# (bench --text), the engines alternated: ROUNDS rounds of dense, then each
# side-car in turn. Prints a markdown table of the medians and their ratios
# to dense, and the share of block executions each variant ran.
#
#   tools/routing/speed.sh MODEL ROUTES.gguf[:exact|:preserve] ...
#
# Environment: SF (build/sparsefuse), TEXT (WikiText-2 test), PP (512),
# TG (128), REPS (3), ROUNDS (2), THREADS (2).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
SF="${SF:-build/sparsefuse}"
TEXT="${TEXT:-$REPO/../shared/data/wikitext-2/test.txt}"
MODEL="$1"
shift
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
head -c 400000 "$TEXT" > "$TMP/text.txt"
one() { # name [routes args] -> appends "pp tg run%" to TMP/name
    local name="$1"
    shift
    "$SF" bench -m "$MODEL" -t "${THREADS:-2}" -p "${PP:-512}" -n "${TG:-128}" -r "${REPS:-3}" --text "$TMP/text.txt" \
        "$@" 2>/dev/null > "$TMP/md"
    local pp tg run
    pp=$(sed -n 's/.*| *pp[0-9]* *| *\([0-9.]*\) ±.*/\1/p' "$TMP/md")
    tg=$(sed -n 's/.*| *tg[0-9]* *| *\([0-9.]*\) ±.*/\1/p' "$TMP/md")
    run=$(sed -n 's/^routes: tg[0-9]* ran \([0-9.]*\) %.*/\1/p' "$TMP/md")
    echo "$pp $tg ${run:-100}" >> "$TMP/$name"
}
for r in $(seq "${ROUNDS:-2}"); do
    one dense
    i=0
    for v in "$@"; do
        i=$((i + 1))
        f="${v%%:*}" kv="exact"
        [ "$f" != "$v" ] && kv="${v##*:}"
        one "v$i" --routes "$f" --route-kv "$kv"
    done
done
med() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
dpp=$(cut -d' ' -f1 "$TMP/dense" | med)
dtg=$(cut -d' ' -f2 "$TMP/dense" | med)
echo "| variant | tg blocks run | pp${PP:-512} t/s | tg${TG:-128} t/s | pp vs dense | tg vs dense |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
echo "| dense | 100 % | $dpp | $dtg | 1 | 1 |"
i=0
for v in "$@"; do
    i=$((i + 1))
    pp=$(cut -d' ' -f1 "$TMP/v$i" | med)
    tg=$(cut -d' ' -f2 "$TMP/v$i" | med)
    run=$(cut -d' ' -f3 "$TMP/v$i" | med)
    echo "| $(basename "$v") | $run % | $pp | $tg | $(python3 -c "print('%.3f' % ($pp / $dpp))") | $(python3 -c "print('%.3f' % ($tg / $dtg))") |"
done
