#!/usr/bin/env bash
# Create the Python environment used to regenerate tests/fixtures from
# llama.cpp itself (see tools/reference/README.md).
#
#   tools/setup_reference_env.sh [VENV_DIR]      (default: <repo>/.venv-ref)
#
# Installs llama-cpp-python (pinned; it vendors a fixed llama.cpp revision)
# built from source with GGML_NATIVE=ON, plus numpy. The build compiles
# llama.cpp and takes a long time on a small machine (~15-30 min on 2 cores).
#
# Environment:
#   PYTHON               interpreter used to create the venv (default python3)
#   LLAMA_CPP_PYTHON_SRC a local llama_cpp_python-<ver>.tar.gz to build instead
#                        of downloading the sdist from PyPI
#   CMAKE_BUILD_PARALLEL_LEVEL  build jobs (default 2)
set -eu

LCP_VERSION=0.3.36

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/.venv-ref}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup_reference_env: creating venv $VENV"
    "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

if "$VPY" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LCP_VERSION')" 2>/dev/null; then
    echo "setup_reference_env: llama-cpp-python $LCP_VERSION already installed in $VENV"
    "$VPY" -m pip install --disable-pip-version-check -q numpy
    exit 0
fi

if [ -n "${LLAMA_CPP_PYTHON_SRC:-}" ]; then
    SRC="$LLAMA_CPP_PYTHON_SRC"
else
    SRC="llama-cpp-python==$LCP_VERSION"
fi

echo "setup_reference_env: building $SRC from source (GGML_NATIVE=ON); this takes a while"
export CMAKE_ARGS="-DGGML_NATIVE=ON"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
"$VPY" -m pip install --disable-pip-version-check --no-cache-dir \
    --no-binary llama-cpp-python "$SRC" numpy

"$VPY" -c "import llama_cpp; print('setup_reference_env: llama-cpp-python', llama_cpp.__version__); print(llama_cpp.llama_print_system_info().decode())"
echo "setup_reference_env: done; use $VPY tools/reference/make_fixtures.py ..."
