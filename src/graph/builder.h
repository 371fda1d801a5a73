// GraphBuilder: what model code calls to say what is computed (DESIGN.md: models say what,
// backends say how). Each call appends a node and returns its handle; shapes are checked here
// so a model bug fails at build time with the node's name, not inside a kernel.
#pragma once

#include <string>

#include "base/status.h"
#include "graph/ir.h"

namespace gannet::graph {

struct Value {
  int32_t id = -1;
  int64_t rows = 0, cols = 0;
};

class GraphBuilder {
 public:
  // n_tokens: rows of the batch; n_outputs: how many rows of logits the caller wants (the
  // batch's output selection chooses which, at execution time).
  GraphBuilder(int64_t n_tokens, int64_t n_outputs);

  // Sets the layer recorded on the nodes that follow (-1: outside the layer stack).
  void SetLayer(int32_t layer) { layer_ = layer; }

  Value Embed(const WeightRef& table, float scale, const std::string& name);  // [T, table.cols]
  Value MatMul(Value x, const WeightRef& w, const std::string& name);         // [T, w.rows]
  Value AddBias(Value x, const WeightRef& bias, const std::string& name);
  // Normalises groups of `group` values (group == x.cols for a plain RMSNorm; head_dim for
  // per-head).
  Value RmsNorm(Value x, const WeightRef& w, float eps, int64_t group, const std::string& name);
  Value Rope(Value x, const RopeParams& p, const std::string& name);
  Value Attention(Value q, Value k, Value v, const AttentionParams& p, const std::string& name);
  Value Glu(Value gate, Value up, GluAct act, const std::string& name);
  Value Add(Value a, Value b, const std::string& name);
  Value Scale(Value x, float s, const std::string& name);
  Value Softcap(Value x, float cap, const std::string& name);
  Value SelectOutputRows(Value x, const std::string& name);  // [n_outputs, x.cols]
  void SetOutput(Value logits);

  // The first shape error seen, if any (later calls after an error are no-ops).
  const Status& status() const { return status_; }
  // REQUIRES: status().ok() and SetOutput called.
  Result<Graph> Finish();

 private:
  Value Append(Node node);
  // Records the first error (with the node's name and layer) and returns an empty Value.
  Value Fail(const std::string& name, const std::string& what);

  Graph graph_;
  int32_t tokens_id_ = -1;
  int32_t layer_ = -1;
  Status status_;
};

}  // namespace gannet::graph
