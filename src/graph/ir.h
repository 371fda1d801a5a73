// The graph IR: a small list of coarse ops over 2-D f32 activations.
//
// Every activation is a row-major [rows, cols] f32 matrix, rows = tokens (heads are folded into
// cols and named by the op's parameters). Weights are borrowed views into the model file. Nodes
// are kept in the order the model code built them, which is a valid execution order.
// Every node carries a name and a layer (-1 outside the layer stack) so a tool can dump and diff
// intermediate tensors against another implementation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/types.h"
#include "tensor/dtype.h"

namespace gannet::graph {

// A borrowed weight: `rows` rows of `cols` values of `type`, contiguous (ggml ne = [cols, rows]).
struct WeightRef {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  std::string name;
  bool valid() const { return data != nullptr; }
};

enum class OpKind {
  kTokens,      // graph input: the batch's token ids (no activation; a placeholder for kEmbed)
  kEmbed,       // [T, d] = table rows of the input tokens, times `scale`
  kMatMul,      // [T, w.rows] = x [T, w.cols] . W^T
  kAddBias,     // [T, c] = x + bias (f32 row vector)
  kRmsNorm,     // rows of width `group` normalised, times weight (length group; optional)
  kRope,        // rotary embedding of [T, n_heads * head_dim] at the batch positions
  kAttention,   // stores k, v into the KV cache of `kv_layer`, attends q over it
  kGlu,         // act(gate) * up
  kAdd,         // a + b
  kScale,       // x * scale
  kSoftcap,     // cap * tanh(x / cap)
  kSelectRows,  // rows of x chosen by the batch's output selection (logits rows)
  // Made by the fusion passes (fuse.h), never by model code:
  kMatMulGlu,  // [T, weight.rows] = act(x . weight^T) * (x . weight2^T): gate and up in one pass
};
const char* OpName(OpKind op);

// The op parameters the backends share (kernels/types.h).
using kernels::GluAct;
using kernels::RopeMode;
using RopeParams = kernels::RopeParams;

struct AttentionParams {
  int32_t kv_layer = 0;  // which KV cache layer slot
  int64_t n_head = 0, n_kv_head = 0, head_dim = 0;
  int64_t window = 0;  // 0: full causal attention
  float scale = 1.0f;
};

struct Node {
  OpKind op = OpKind::kTokens;
  std::string name;
  int32_t layer = -1;
  int64_t rows = 0, cols = 0;   // output shape [rows, cols]
  std::vector<int32_t> inputs;  // node ids
  WeightRef weight;             // kEmbed, kMatMul, kAddBias, kRmsNorm (optional)
  float eps = 0.0f;             // kRmsNorm
  int64_t group = 0;            // kRmsNorm row width (cols for a plain norm, head_dim per head)
  float scale = 1.0f;           // kEmbed, kScale, kSoftcap
  GluAct act = GluAct::kSilu;
  RopeParams rope;
  AttentionParams attn;

  // Set by the fusion passes (fuse.h):
  WeightRef weight2;  // kMatMulGlu: the up projection (`weight` is the gate)
  // kMatMul / kMatMulGlu: x is RMS-normalised (times `norm`, which may be empty; epsilon `eps`)
  // as the product quantizes it; kAdd: inputs[1] is, row by row, as the sum is formed (a
  // residual add after a post-norm). The norm node this replaced is gone.
  bool pre_norm = false;
  WeightRef norm;
  // kMatMul sharing its input with other kMatMul nodes: the first of them in node order (the
  // leader) computes all of them in one pass and lists the others in `siblings`; each of the others
  // names the leader in `computed_by` and is not executed itself (its buffer is written by the
  // leader, so it is live from there).
  std::vector<int32_t> siblings;
  int32_t computed_by = -1;
};

struct Graph {
  std::vector<Node> nodes;
  int32_t output = -1;  // the logits node
  int64_t n_tokens = 0;
  int64_t n_outputs = 0;  // rows of the output
};

}  // namespace gannet::graph
