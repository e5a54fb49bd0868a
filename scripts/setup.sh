#!/usr/bin/env bash
# One command for a fresh machine: installs the system packages, builds
# sparsefuse, fetches the default model and runs the main job (a short
# generation with the default model).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config libcmocka-dev libopenblas-dev liblapacke-dev libpng-dev libjansson-dev python3 python3-pip unzip bzip2)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

echo "== building (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

echo "== fetching models (models/)"
bash scripts/fetch_models.sh models

echo "== main job: a generation with the default model"
./build/sparsefuse run -m models/SmolLM2-135M-Instruct.Q4_1.gguf -n 48 --temp 0 \
  -p "The three most important inventions of the twentieth century are"
echo

# FFN Fusion on the default model, in a few minutes: the dependency analysis
# (report in build/fusion-demo/analysis/index.html), a variant with the 8 least
# important attention sub-blocks dropped and the resulting attention-free run
# fused, and the comparison table (small samples: see docs/ffn-fusion.md for
# the full numbers and tools/fusion/experiments.sh to reproduce them).
DATA="$(cd .. && pwd)/shared/data"
if [ -f "$DATA/wikitext-2/valid.txt" ]; then
  echo "== main job: FFN Fusion on the default model"
  DEMO=build/fusion-demo
  mkdir -p "$DEMO"
  ./build/sparsefuse analyze -m models/SmolLM2-135M-Instruct.Q4_1.gguf -f "$DATA/wikitext-2/valid.txt" \
    --tokens 128 -c 128 -o "$DEMO/analysis"
  ./build/sparsefuse fuse -m models/SmolLM2-135M-Instruct.Q4_1.gguf -a "$DEMO/analysis" \
    --drop-attn auto:8 --fuse auto -o "$DEMO/drop8-fuse.gguf"
  ./build/sparsefuse compare -m models/SmolLM2-135M-Instruct.Q4_1.gguf -m "$DEMO/drop8-fuse.gguf" \
    -f "$DATA/wikitext-2/test.txt" --chunks 4 --hellaswag "$DATA/hellaswag_val_full.txt.bz2" --tasks 40 \
    -p 128 -n 32 -r 1
else
  echo "== (FFN Fusion demo skipped: $DATA/wikitext-2 not found)"
fi
