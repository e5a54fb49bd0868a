#!/usr/bin/env bash
# The committed bench matrix against llama.cpp (see bench/README.md): one run
# of bench/compare_llamacpp.py over
#
#   models/SmolLM2-135M-Instruct.Q4_1.gguf     (scripts/fetch_models.sh)
#   models/gemma-3-270m-q4_k_m.gguf            (scripts/fetch_models.sh)
#   $SYNTH_DIR/llama-3.2-1b-{q4_k_m,q4_0,q8_0,q6_k}.gguf   (sparsefuse synth)
#
# printing one table with a row per model (pp512, tg128, tg128@d4096 on both
# engines, their ratios, sparsefuse's tg GB/s, peak RSS). Files that do not
# exist are skipped with a message saying how to make them.
#
#   bench/run_all.sh [EXTRA.gguf ...] [compare_llamacpp.py options...]
#
# Leading arguments that are not options are further models, appended to the
# matrix. Every other argument (-t, -r, -p, -n, --tg-depth, --venv,
# --sparsefuse, --no-extra-bufts, ...) goes to compare_llamacpp.py. SYNTH_DIR
# defaults to /tmp/synth. With RESULTS_DIR set, the run also writes
# $RESULTS_DIR/matrix.csv (every repetition) and $RESULTS_DIR/matrix.md (the
# table). PYTHON picks the interpreter that runs the orchestrator (default
# python3; llama.cpp always runs in the venv's Python).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SYNTH_DIR="${SYNTH_DIR:-/tmp/synth}"
PY="${PYTHON:-python3}"

models=()
add() { # add FILE HOW-TO-MAKE-IT
    if [ -f "$1" ]; then
        models+=(-m "$1")
    else
        echo "run_all: $1 does not exist; skipping it ($2)" >&2
    fi
}

add "$REPO/models/SmolLM2-135M-Instruct.Q4_1.gguf" "scripts/fetch_models.sh fetches it"
add "$REPO/models/gemma-3-270m-q4_k_m.gguf" "scripts/fetch_models.sh fetches it"
for type in q4_k_m q4_0 q8_0 q6_k; do
    f="$SYNTH_DIR/llama-3.2-1b-$type.gguf"
    add "$f" "make it with: mkdir -p $SYNTH_DIR && build/sparsefuse synth --type $type -o $f"
done
while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do
    add "$1" "given on the command line"
    shift
done
if [ ${#models[@]} -eq 0 ]; then
    echo "run_all: no model to measure" >&2
    exit 1
fi

if [ -n "${RESULTS_DIR:-}" ]; then
    mkdir -p "$RESULTS_DIR"
    "$PY" "$REPO/bench/compare_llamacpp.py" "${models[@]}" --csv "$RESULTS_DIR/matrix.csv" "$@" \
        | tee "$RESULTS_DIR/matrix.md"
else
    "$PY" "$REPO/bench/compare_llamacpp.py" "${models[@]}" "$@"
fi
