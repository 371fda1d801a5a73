#!/usr/bin/env bash
# Second command of the README: build and run the whole test suite.
#   1. Release build, every test (unit + model; the model is fetched and cached on first use).
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build: the hermetic unit tests and the CLI
#      end-to-end tests (corrupt files, bad options) against the sanitized binary.
#   3. The libFuzzer targets (scripts/fuzz.sh, clang + ASan + UBSan), 45 s each from the committed
#      seeds; docs/reliability.md has the long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --dev
jobs=$(nproc)

scripts/build.sh build
(cd build && ctest --output-on-failure -j"$jobs" --timeout 1800)

scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGANNET_SANITIZE=ON
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j"$jobs" -L "unit|cli" --timeout 1800)

scripts/fuzz.sh 45
