#!/usr/bin/env bash
# First command of the README: install what is missing, build, fetch the default model, run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
GANNET_BUILD_TARGET=gannet scripts/build.sh build
model=$(.venv/bin/python tools/fetch_model.py | tail -n 1)
echo
echo "== build/bin/gannet run -m $model -p \"Why is the sky blue?\" -n 64"
build/bin/gannet run -m "$model" -p "Why is the sky blue?" -n 64
