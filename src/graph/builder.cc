#include "graph/builder.h"

#include <utility>

namespace gannet::graph {

const char* OpName(OpKind op) {
  switch (op) {
    case OpKind::kTokens:
      return "tokens";
    case OpKind::kEmbed:
      return "embed";
    case OpKind::kMatMul:
      return "matmul";
    case OpKind::kAddBias:
      return "add_bias";
    case OpKind::kRmsNorm:
      return "rms_norm";
    case OpKind::kRope:
      return "rope";
    case OpKind::kAttention:
      return "attention";
    case OpKind::kGlu:
      return "glu";
    case OpKind::kAdd:
      return "add";
    case OpKind::kScale:
      return "scale";
    case OpKind::kSoftcap:
      return "softcap";
    case OpKind::kSelectRows:
      return "select_rows";
    case OpKind::kMatMulGlu:
      return "matmul_glu";
  }
  return "?";
}

GraphBuilder::GraphBuilder(int64_t n_tokens, int64_t n_outputs) {
  graph_.n_tokens = n_tokens;
  graph_.n_outputs = n_outputs;
  Node tokens{.op = OpKind::kTokens, .name = "tokens", .rows = n_tokens, .cols = 1};
  tokens_id_ = Append(std::move(tokens)).id;
}

Value GraphBuilder::Append(Node node) {
  node.layer = node.op == OpKind::kTokens ? -1 : layer_;
  Value v{static_cast<int32_t>(graph_.nodes.size()), node.rows, node.cols};
  graph_.nodes.push_back(std::move(node));
  return v;
}

Value GraphBuilder::Fail(const std::string& name, const std::string& what) {
  if (status_.ok()) {
    std::string where = layer_ >= 0 ? " (layer " + std::to_string(layer_) + ")" : "";
    status_ = Status::Internal("graph node '" + name + "'" + where + ": " + what);
  }
  return Value{};
}

Value GraphBuilder::Embed(const WeightRef& table, float scale, const std::string& name) {
  if (!status_.ok()) return {};
  if (!table.valid()) return Fail(name, "missing embedding table");
  return Append(Node{.op = OpKind::kEmbed,
                     .name = name,
                     .rows = graph_.n_tokens,
                     .cols = table.cols,
                     .inputs = {tokens_id_},
                     .weight = table,
                     .scale = scale});
}

Value GraphBuilder::MatMul(Value x, const WeightRef& w, const std::string& name) {
  if (!status_.ok()) return {};
  if (!w.valid()) return Fail(name, "missing weight");
  if (w.cols != x.cols) {
    return Fail(name, "weight '" + w.name + "' takes " + std::to_string(w.cols) + " inputs, got " +
                          std::to_string(x.cols));
  }
  return Append(Node{.op = OpKind::kMatMul,
                     .name = name,
                     .rows = x.rows,
                     .cols = w.rows,
                     .inputs = {x.id},
                     .weight = w});
}

Value GraphBuilder::AddBias(Value x, const WeightRef& bias, const std::string& name) {
  if (!status_.ok()) return {};
  if (!bias.valid() || bias.type != DType::kF32 || bias.rows * bias.cols != x.cols) {
    return Fail(name, "bias must be f32 of length " + std::to_string(x.cols));
  }
  return Append(Node{.op = OpKind::kAddBias,
                     .name = name,
                     .rows = x.rows,
                     .cols = x.cols,
                     .inputs = {x.id},
                     .weight = bias});
}

Value GraphBuilder::RmsNorm(Value x, const WeightRef& w, float eps, int64_t group,
                            const std::string& name) {
  if (!status_.ok()) return {};
  if (group <= 0 || x.cols % group != 0) return Fail(name, "bad norm group");
  if (w.valid() && (w.type != DType::kF32 || w.rows * w.cols != group)) {
    return Fail(name,
                "norm weight '" + w.name + "' must be f32 of length " + std::to_string(group));
  }
  return Append(Node{.op = OpKind::kRmsNorm,
                     .name = name,
                     .rows = x.rows,
                     .cols = x.cols,
                     .inputs = {x.id},
                     .weight = w,
                     .eps = eps,
                     .group = group});
}

Value GraphBuilder::Rope(Value x, const RopeParams& p, const std::string& name) {
  if (!status_.ok()) return {};
  if (p.n_heads * p.head_dim != x.cols || p.n_rot > p.head_dim || p.n_rot % 2 != 0) {
    return Fail(name, "rope shape mismatch");
  }
  return Append(Node{.op = OpKind::kRope,
                     .name = name,
                     .rows = x.rows,
                     .cols = x.cols,
                     .inputs = {x.id},
                     .rope = p});
}

Value GraphBuilder::Attention(Value q, Value k, Value v, const AttentionParams& p,
                              const std::string& name) {
  if (!status_.ok()) return {};
  if (q.cols != p.n_head * p.head_dim || k.cols != p.n_kv_head * p.head_dim ||
      v.cols != p.n_kv_head * p.head_dim || p.n_kv_head <= 0 || p.n_head % p.n_kv_head != 0) {
    return Fail(name, "attention shape mismatch");
  }
  return Append(Node{.op = OpKind::kAttention,
                     .name = name,
                     .rows = q.rows,
                     .cols = q.cols,
                     .inputs = {q.id, k.id, v.id},
                     .attn = p});
}

Value GraphBuilder::Glu(Value gate, Value up, GluAct act, const std::string& name) {
  if (!status_.ok()) return {};
  if (gate.rows != up.rows || gate.cols != up.cols) return Fail(name, "glu shape mismatch");
  return Append(Node{.op = OpKind::kGlu,
                     .name = name,
                     .rows = gate.rows,
                     .cols = gate.cols,
                     .inputs = {gate.id, up.id},
                     .act = act});
}

Value GraphBuilder::Add(Value a, Value b, const std::string& name) {
  if (!status_.ok()) return {};
  if (a.rows != b.rows || a.cols != b.cols) return Fail(name, "add shape mismatch");
  return Append(Node{
      .op = OpKind::kAdd, .name = name, .rows = a.rows, .cols = a.cols, .inputs = {a.id, b.id}});
}

Value GraphBuilder::Scale(Value x, float s, const std::string& name) {
  if (!status_.ok()) return {};
  return Append(Node{.op = OpKind::kScale,
                     .name = name,
                     .rows = x.rows,
                     .cols = x.cols,
                     .inputs = {x.id},
                     .scale = s});
}

Value GraphBuilder::Softcap(Value x, float cap, const std::string& name) {
  if (!status_.ok()) return {};
  return Append(Node{.op = OpKind::kSoftcap,
                     .name = name,
                     .rows = x.rows,
                     .cols = x.cols,
                     .inputs = {x.id},
                     .scale = cap});
}

Value GraphBuilder::SelectOutputRows(Value x, const std::string& name) {
  if (!status_.ok()) return {};
  return Append(Node{.op = OpKind::kSelectRows,
                     .name = name,
                     .rows = graph_.n_outputs,
                     .cols = x.cols,
                     .inputs = {x.id}});
}

void GraphBuilder::SetOutput(Value logits) {
  if (!status_.ok()) return;
  if (logits.rows != graph_.n_outputs) {
    Fail("output", "logits must have one row per output");
    return;
  }
  graph_.output = logits.id;
}

Result<Graph> GraphBuilder::Finish() {
  if (!status_.ok()) return status_;
  if (graph_.output < 0) return Status::Internal("graph has no output");
  return std::move(graph_);
}

}  // namespace gannet::graph
