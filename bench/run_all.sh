#!/usr/bin/env bash
# The committed speed comparison with llama.cpp (see bench/README.md): runs
# bench/compare_llamacpp.py on the default model (SmolLM2-135M Q4_1) and, if
# it exists, on a synthetic Llama-3.2-1B-shaped Q4_0 model.
#
#   bench/run_all.sh [SYNTH_GGUF] [compare_llamacpp.py options...]
#
# SYNTH_GGUF defaults to /tmp/synth/llama-3.2-1b-q4_0.gguf (`sparsefuse synth`
# writes it); it is skipped with a message when missing. Every other argument
# (-t, -r, --venv, --sparsefuse, ...) goes to both runs. With RESULTS_DIR set,
# each run also writes $RESULTS_DIR/<model file name>.csv.
set -eu

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SYNTH=/tmp/synth/llama-3.2-1b-q4_0.gguf
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    SYNTH="$1"
    shift
fi
PY="${PYTHON:-python3}"

run() {
    local model="$1"
    shift
    local csv=()
    if [ -n "${RESULTS_DIR:-}" ]; then
        mkdir -p "$RESULTS_DIR"
        csv=(--csv "$RESULTS_DIR/$(basename "$model" .gguf).csv")
    fi
    echo "## $(basename "$model")"
    echo
    "$PY" "$REPO/bench/compare_llamacpp.py" -m "$model" "${csv[@]}" "$@"
    echo
}

run "$REPO/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$@"
if [ -f "$SYNTH" ]; then
    run "$SYNTH" "$@"
else
    echo "run_all: $SYNTH does not exist; skipping the 1B model (create it with 'sparsefuse synth')" >&2
fi
