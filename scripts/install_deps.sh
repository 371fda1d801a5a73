#!/usr/bin/env bash
# Installs what gannet needs, where it is missing: Debian packages (as root, or through sudo) and a
# Python virtual environment in .venv.
#   scripts/install_deps.sh        what building and running gannet needs (scripts/setup.sh)
#   scripts/install_deps.sh --dev  also what the tests, benchmarks and checks need: the tools'
#                                  Python packages, clang-format, clang with libFuzzer, and
#                                  llama.cpp's Python binding built from source (scripts/test.sh)
# Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

APT_PACKAGES=(build-essential cmake pkg-config git python3 python3-venv python3-pip
              nlohmann-json3-dev libpcre2-dev libcli11-dev libgtest-dev libgmock-dev libreadline-dev
              libcurl4-openssl-dev)
if [ "$dev" = 1 ]; then
  APT_PACKAGES+=(clang-format-14
                 clang-14 libclang-rt-14-dev  # scripts/fuzz.sh: clang, libFuzzer, sanitizer runtimes
                 chromium chromium-driver)    # tests/e2e/test_webui.py: the web page, headless
fi

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
# The model fetch (tools/fetch_model.py) needs only the standard library and pip.
[ "$dev" = 1 ] || exit 0
if ! .venv/bin/python -c "import numpy, gguf, pytest, jinja2, openai, httpx, jsonschema, rfc3339_validator, selenium" 2>/dev/null; then
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
