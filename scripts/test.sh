#!/usr/bin/env bash
# The whole test suite: the release build, then the same tests built with
# AddressSanitizer + UndefinedBehaviorSanitizer. Fails on any failure.
# Tests whose model is missing are reported as skipped, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== release build + tests (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== sanitizer build + tests (build-asan/, -fsanitize=address,undefined)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSF_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs" -LE slow)
