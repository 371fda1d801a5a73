#!/usr/bin/env bash
# Installs what gannet needs to build and test, where it is missing: Debian packages (as root, or
# through sudo) and a Python virtual environment in .venv with the tools' packages.
# Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake pkg-config git python3 python3-venv python3-pip
              nlohmann-json3-dev libpcre2-dev libcli11-dev libgtest-dev libgmock-dev libreadline-dev
              clang-format-14
              clang-14 libclang-rt-14-dev)  # scripts/fuzz.sh: clang, libFuzzer and the sanitizers' runtimes

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The tools' Python environment (model fetch, reference scripts' readers, benchmarks).
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, gguf, pytest, jinja2, openai, httpx" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt
fi
# llama.cpp through its Python binding: the independent implementation the benchmarks compare
# against and some tests load files into. Compiled from source for this CPU, as its users build it
# (a few minutes, once).
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  echo "building llama-cpp-python from source (native CPU optimizations)"
  CMAKE_ARGS="-DGGML_NATIVE=ON" .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    --no-binary llama-cpp-python -r tools/requirements-reference.txt
fi
