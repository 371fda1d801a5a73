// gannet bench --parallel N1,N2,...: the decode rate of N sequences decoding together, through
// the engine (its scheduler, batched forward passes and sampling; no HTTP), for each N, as
// llama.cpp's batched-bench does. A server's throughput at N clients is bounded by this. Used by
// bench.cc only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model_runner.h"

namespace gannet::cli {

struct ParallelBenchOptions {
  std::string model;
  std::vector<int32_t> counts;  // N of each run, >= 1
  int64_t n_prompt = 8;         // tokens per sequence's prompt (pseudo-random, one per sequence)
  int32_t n_gen = 128;          // tokens generated per sequence
  int reps = 5;
  // The sequences' sampling: 0 greedy; above 0 an untruncated draw at this temperature (top_k,
  // top_p and min_p off: the OpenAI API's defaults at 1), sequence i seeded with 1000 + i, so
  // its tokens still do not depend on the count.
  float temperature = 0.0f;
  bool json = false;
  // Also report, per count, where its steps' time goes: ms per step by graph node kind, and the
  // engine's own time between passes (every step of the measured runs, their prompts' included).
  bool profile = false;
};

// Runs every count once per repetition (after one warm-up round; the counts' order alternates
// between repetitions) and prints the median decode rate per count and its ratio to the first
// count's (a table, or one JSON line), with the cores' round trip measured before each run
// (base/core_latency.h). Returns the exit code.
int RunParallelBench(engine::ModelRunner* runner, const ParallelBenchOptions& options);

}  // namespace gannet::cli
