#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan + UBSan, in build-fuzz/) and runs each for
# SECONDS (default 60) from its committed seeds.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: http_parser openai_request jinja gguf tokenizer
#                                             utility_api hub grammar tool_calls kld_file
# New inputs go to build-fuzz/fuzz-corpus/<target>/ (kept between runs, never into fuzz/corpus/);
# a crash, a leak, a sanitizer report or an input slower than 10 s stops that target, leaves the
# input in build-fuzz/fuzz-artifacts/ and makes the script fail. docs/reliability.md has the long
# runs and what to do with a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(http_parser openai_request jinja gguf tokenizer utility_api hub grammar
  tool_calls kld_file)

CC=${FUZZ_CC:-clang} CXX=${FUZZ_CXX:-clang++} cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGANNET_FUZZ=ON -DGANNET_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_all

mkdir -p build-fuzz/fuzz-artifacts
status=0
for t in "${targets[@]}"; do
  work=build-fuzz/fuzz-corpus/$t
  mkdir -p "$work"
  log=build-fuzz/fuzz-$t.log
  echo "fuzz: $t for ${seconds}s"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "build-fuzz/fuzz/${t}_fuzz" "$work" "fuzz/corpus/$t" -max_total_time="$seconds" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/fuzz-artifacts/$t-" >"$log" 2>&1; then
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" | sed "s/^/  /"
  else
    echo "fuzz: $t FAILED; the input is in build-fuzz/fuzz-artifacts/, the report in $log:"
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -20 | sed "s/^/  /"
    status=1
  fi
done
exit $status
