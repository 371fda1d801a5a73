// Plan: a Graph compiled for execution on the CPU backend.
//
// Compile() decides where every activation lives in one arena: buffers whose lifetimes
// (producer .. last consumer) overlap never share bytes, all others may (greedy best-fit by size,
// as in TVM's / TorchInductor's static memory planners). Execute() then runs the nodes in order
// with no allocation: the caller owns the arena and the matmul scratch, sized by the plan.
// Thread-safety: a Plan is immutable after Compile; Execute needs exclusive use of the arena.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "graph/fuse.h"
#include "graph/ir.h"

namespace gannet::graph {

// The K/V storage of one cache layer as the attention kernel reads it (see cpu::KvView).
struct KvLayerView {
  uint16_t* const* k_blocks = nullptr;
  uint16_t* const* v_blocks = nullptr;
  int64_t block_size = 0;
};

// One sequence of a multi-sequence batch: token rows [row_begin, row_end) belong to it, their
// K/V go into its cache views, and they attend to its cache positions [0, n_kv) only.
struct SeqSlice {
  int64_t row_begin = 0, row_end = 0;
  std::span<const KvLayerView> kv;  // one per KV cache layer (this sequence's block table)
  int64_t n_kv = 0;
};

// What changes from one execution to the next: the batch's contents. Either one sequence (`kv`
// and `n_kv`, `seqs` empty) or several (`seqs`, which then cover every row exactly once, in order).
// Every op except attention treats rows independently, so one forward pass serves a mixed batch
// of prompt chunks and decode tokens from different requests (Orca's selective batching).
struct BatchInputs {
  std::span<const int32_t> tokens;       // [n_tokens]
  std::span<const int32_t> positions;    // [n_tokens]
  std::span<const int32_t> output_rows;  // [n_outputs] rows (token indices) whose logits are wanted
  std::span<const KvLayerView> kv;       // one per KV cache layer
  int64_t n_kv = 0;                      // cache positions [0, n_kv) may be attended
  std::span<const SeqSlice> seqs;        // several sequences (overrides kv / n_kv)
  // When set and true, Execute stops before its next node and returns Unavailable: the caller no
  // longer wants the result (e.g. every request in the batch was cancelled). The K/V written so far
  // is partial; the caller must discard those positions.
  const std::atomic<bool>* abort = nullptr;
};

// Called after each node with its output (rows x cols f32, row-major, contiguous), in node
// order (a grouped matmul's output is reported at its own place in the order).
using NodeObserver = std::function<void(const Node& node, const float* data)>;

struct PlanOptions {
  // Run the fusion passes (fuse.h) first. Off: every node of the model's graph is executed as
  // written, so an observer sees every intermediate tensor (for dumps and comparisons).
  bool fuse = true;
};

class Plan {
 public:
  static Result<Plan> Compile(Graph graph, const PlanOptions& options = {});

  // The graph as executed (after fusion, if any).
  const Graph& graph() const { return graph_; }
  const FuseStats& fuse_stats() const { return fuse_stats_; }
  size_t arena_bytes() const { return arena_bytes_; }
  size_t scratch_bytes() const { return scratch_bytes_; }
  // Sum of all activation sizes: what the arena would need without reuse (for reporting).
  size_t unplanned_bytes() const { return unplanned_bytes_; }
  // Where node `id`'s output lives in the arena (SIZE_MAX for nodes without a buffer).
  size_t offset(int32_t id) const { return offsets_[id]; }

  // Runs the graph. arena: arena_bytes() bytes, 64-byte aligned; scratch: scratch_bytes().
  // Returns the output rows [n_outputs, vocab] inside the arena (valid until the next Execute).
  // REQUIRES: inputs sized as the graph (n_tokens, n_outputs) and valid token ids.
  Result<std::span<const float>> Execute(ThreadPool& pool, const BatchInputs& inputs, void* arena,
                                         void* scratch, const NodeObserver* observer = nullptr) const;

 private:
  Graph graph_;
  FuseStats fuse_stats_;
  std::vector<size_t> offsets_;  // per node, into the arena (SIZE_MAX: no buffer)
  size_t arena_bytes_ = 0;
  size_t scratch_bytes_ = 0;
  size_t unplanned_bytes_ = 0;
};

}  // namespace gannet::graph
