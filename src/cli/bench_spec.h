// gannet bench --spec: decode speed with and without speculative decoding on one prompt, through
// the engine (bench_spec.cc says how it is measured). Used by bench.cc only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engine/model_runner.h"

namespace gannet::cli {

struct SpecBenchOptions {
  std::string model;
  SpecFlags spec;               // the method compared with none
  std::vector<int32_t> prompt;  // used when prompt_file is empty
  std::string prompt_file;      // -f: the prompt's text
  int32_t n_gen = 128;          // tokens generated per run
  int reps = 5;
  bool json = false;
};

// The median of v (the mean of the middle two for an even count; 0 for none). Also used by
// bench_parallel.cc.
double MedianOf(std::vector<double> v);

// Runs the comparison on the loaded model and prints it (a table, or one JSON line). Returns the
// exit code: 1 on an error or when the two runs' tokens differ.
int RunSpecBench(engine::ModelRunner* runner, const SpecBenchOptions& options);

}  // namespace gannet::cli
