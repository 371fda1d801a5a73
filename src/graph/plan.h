// Plan: a Graph compiled for execution on a kernels::Backend.
//
// Compile() decides where every activation lives in one arena: buffers whose lifetimes
// (producer .. last consumer) overlap never share bytes, all others may (greedy best-fit by size,
// as in TVM's / TorchInductor's static memory planners). Execute() then runs the nodes in order,
// one Backend call per node, with no allocation: the caller owns the arena and the matmul scratch,
// sized by the plan (the scratch for a given backend). Compile needs no backend: the fusion passes
// use only device-neutral facts (kernels/types.h).
// Thread-safety: a Plan is immutable after Compile; Execute needs exclusive use of the arena, the
// scratch and the backend.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/status.h"
#include "graph/fuse.h"
#include "graph/ir.h"
#include "kernels/backend.h"

namespace gannet::graph {

// The K/V storage of one cache layer, and one sequence of a multi-sequence batch (its token rows,
// its cache views per layer, the positions it may attend): the attention op's terms
// (kernels/backend.h).
using KvLayerView = kernels::KvLayerView;
using SeqSlice = kernels::SeqSlice;

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
  std::span<const SeqSlice> seqs;        // several sequences (overrides kv / n_kv); a slice's
                                         // token tree reaches every attention layer unchanged
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
  // The scratch Execute needs on `backend` (the largest of its matmuls' needs, 64-byte multiple).
  size_t scratch_bytes(const kernels::Backend& backend) const;
  // Sum of all activation sizes: what the arena would need without reuse (for reporting).
  size_t unplanned_bytes() const { return unplanned_bytes_; }
  // Where node `id`'s output lives in the arena (SIZE_MAX for nodes without a buffer).
  size_t offset(int32_t id) const { return offsets_[id]; }

  // Runs the graph on `backend`. arena: arena_bytes() bytes, 64-byte aligned; scratch:
  // scratch_bytes(backend) bytes, 64-byte aligned; both memory the backend addresses.
  // Returns the output rows [n_outputs, vocab] inside the arena (valid until the next Execute).
  // REQUIRES: inputs sized as the graph (n_tokens, n_outputs) and valid token ids.
  Result<std::span<const float>> Execute(kernels::Backend& backend, const BatchInputs& inputs,
                                         void* arena, void* scratch,
                                         const NodeObserver* observer = nullptr) const;

 private:
  Graph graph_;
  FuseStats fuse_stats_;
  std::vector<size_t> offsets_;  // per node, into the arena (SIZE_MAX: no buffer)
  size_t arena_bytes_ = 0;
  size_t unplanned_bytes_ = 0;
};

}  // namespace gannet::graph
