#!/usr/bin/env bash
# Configures and builds gannet. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
# GANNET_BUILD_TARGET=gannet builds only that target (the binary, not the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)" ${GANNET_BUILD_TARGET:+--target "$GANNET_BUILD_TARGET"}
