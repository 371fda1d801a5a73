// Where a forward pass's time goes, by kind of graph node: `gannet bench --profile` (pp and tg)
// and `gannet bench --parallel ... --profile` (a batched decode step). Used by bench*.cc only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "graph/plan.h"

namespace gannet::cli {

// Time per token (or per step) spent in each kind of graph node: matmuls are keyed by weight type
// and shape (the output matrix and a layer's projections differ by orders of magnitude), every
// other op by its name. A node's time runs from the previous node's end. Fused nodes
// (graph/fuse.h): a group of sibling matmuls is one row, keyed by its first member and counted
// with all its members' weight bytes and multiply-adds; a GLU pair names both weights. Matmuls
// report the weight bytes read per second (what bounds one-token decoding) and multiply-adds per
// second (what bounds prefill).
// Thread-safety: one thread at a time (the observer runs on the thread that runs the passes).
class OpProfile {
 public:
  // The observer to hand to a forward pass; valid while this object lives.
  graph::NodeObserver Observer();
  // Marks the start of a forward pass. With count_gap, the time since the previous pass's last
  // node (what the caller did between passes: an engine's scheduling, sampling and output) is a
  // row of its own, kOutsideGraph.
  void Start(bool count_gap = false);

  static constexpr const char* kOutsideGraph = "outside the graph (scheduling, sampling, output)";

  struct Row {
    std::string op;
    double calls_per_pass = 0, ms_per_unit = 0, share = 0;
    double weight_gbps = 0;  // 0 for ops without weights
    double gmacs = 0;        // multiply-adds per second / 1e9; 0 for ops without weights
  };
  // Rows by time, largest first, over n_passes forward passes of n_units tokens (or steps) in all.
  std::vector<Row> Rows(int64_t n_units, int64_t n_passes) const;
  // `what`: "tg", "pp" or a step's name, for the heading; `unit`: "token" or "step".
  void Print(const char* what, int64_t n_units, int64_t n_passes, const char* unit = "token") const;
  // The rows as a JSON array (ms per unit as "ms_per_token", or "ms_per_step" when unit is "step").
  nlohmann::json Json(int64_t n_units, int64_t n_passes, const char* unit = "token") const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    double seconds = 0;
    int64_t calls = 0, bytes = 0, macs = 0;
  };

  std::map<std::string, Entry> entries_;  // std::map: entries never move
  Entry* group_ = nullptr;                // the group whose members are being reported
  Clock::time_point last_;
  bool in_pass_ = false;  // a node was seen since the last Start
};

}  // namespace gannet::cli
