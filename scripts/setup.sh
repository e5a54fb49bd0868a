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
