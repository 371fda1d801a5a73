#include "graph/plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include "kernels/cpu/ops.h"

namespace gannet::graph {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kNoBuffer = std::numeric_limits<size_t>::max();

size_t AlignUp(size_t x) { return (x + kAlign - 1) & ~(kAlign - 1); }

struct Interval {
  size_t offset, size;
  int32_t first, last;  // node indices during which the buffer is live (inclusive)
};

}  // namespace

namespace {

// The arguments of the MatMulGroup that node `id` (a kMatMul leader or a kMatMulGlu) runs; y
// pointers and scratch are filled in at execution.
int GroupOutputs(const Graph& g, int32_t id, cpu::MatMulOutput* outs) {
  const Node& node = g.nodes[id];
  auto out = [&](const Node& n, const WeightRef& w) {
    return cpu::MatMulOutput{.wtype = w.type, .w = w.data, .n_out = w.rows, .y = nullptr, .y_stride = n.cols};
  };
  int n = 0;
  outs[n++] = out(node, node.weight);
  if (node.op == OpKind::kMatMulGlu) {
    outs[n++] = out(node, node.weight2);
  } else {
    for (int32_t m : node.siblings) outs[n++] = out(g.nodes[m], g.nodes[m].weight);
  }
  return n;
}

cpu::MatMulGroupArgs GroupArgs(const Node& node, const cpu::MatMulOutput* outs, int n_outs) {
  return cpu::MatMulGroupArgs{.x_stride = node.weight.cols, .n_in = node.weight.cols, .n_tokens = node.rows,
                              .outputs = outs, .n_outputs = n_outs, .pre_norm = node.pre_norm,
                              .norm_weight = static_cast<const float*>(node.norm.data), .norm_eps = node.eps,
                              .glu = node.op == OpKind::kMatMulGlu, .act = node.act};
}

}  // namespace

Result<Plan> Plan::Compile(Graph graph, const PlanOptions& options) {
  Plan plan;
  if (graph.output < 0 || graph.output >= static_cast<int32_t>(graph.nodes.size())) {
    return Status::Internal("plan: graph has no output");
  }
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (int32_t in : graph.nodes[i].inputs) {
      if (in < 0 || in >= static_cast<int32_t>(graph.nodes.size())) {
        return Status::Internal("plan: node '" + graph.nodes[i].name + "' has a bad input");
      }
      if (in >= static_cast<int32_t>(i)) return Status::Internal("plan: node '" + graph.nodes[i].name + "' uses a later node");
    }
  }
  if (options.fuse) plan.fuse_stats_ = Fuse(graph);
  const int32_t n = static_cast<int32_t>(graph.nodes.size());

  // Liveness: a buffer lives from the node that writes it (its group's leader for a grouped
  // matmul) to its last consumer; the output to the end.
  std::vector<int32_t> first(n), last_use(n, -1);
  for (int32_t i = 0; i < n; ++i) {
    first[i] = graph.nodes[i].computed_by >= 0 ? graph.nodes[i].computed_by : i;
    last_use[i] = std::max(last_use[i], i);
    for (int32_t in : graph.nodes[i].inputs) last_use[in] = std::max(last_use[in], i);
  }
  last_use[graph.output] = n;

  // Greedy placement, largest first: lowest offset that fits between the live buffers.
  std::vector<int32_t> order;
  std::vector<size_t> sizes(n, 0);
  for (int32_t i = 0; i < n; ++i) {
    const Node& node = graph.nodes[i];
    if (node.op == OpKind::kTokens) continue;
    sizes[i] = AlignUp(static_cast<size_t>(node.rows * node.cols) * sizeof(float));
    plan.unplanned_bytes_ += sizes[i];
    order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return sizes[a] > sizes[b]; });
  plan.offsets_.assign(n, kNoBuffer);
  std::vector<Interval> placed;
  for (int32_t i : order) {
    std::vector<std::pair<size_t, size_t>> busy;
    for (const Interval& iv : placed) {
      if (iv.first <= last_use[i] && first[i] <= iv.last) busy.emplace_back(iv.offset, iv.offset + iv.size);
    }
    std::sort(busy.begin(), busy.end());
    size_t offset = 0;
    for (const auto& [b, e] : busy) {
      if (offset + sizes[i] <= b) break;
      offset = std::max(offset, e);
    }
    plan.offsets_[i] = offset;
    placed.push_back({offset, sizes[i], first[i], last_use[i]});
    plan.arena_bytes_ = std::max(plan.arena_bytes_, offset + sizes[i]);
  }

  for (int32_t i = 0; i < n; ++i) {
    const Node& node = graph.nodes[i];
    if ((node.op == OpKind::kMatMul && node.computed_by < 0) || node.op == OpKind::kMatMulGlu) {
      cpu::MatMulOutput outs[cpu::kMaxMatMulGroup];
      const int n_outs = GroupOutputs(graph, i, outs);
      plan.scratch_bytes_ = std::max(plan.scratch_bytes_, cpu::MatMulGroupScratchBytes(GroupArgs(node, outs, n_outs)));
    }
  }
  plan.scratch_bytes_ = AlignUp(plan.scratch_bytes_);
  plan.graph_ = std::move(graph);
  return plan;
}

Result<std::span<const float>> Plan::Execute(ThreadPool& pool, const BatchInputs& in, void* arena,
                                             void* scratch, const NodeObserver* observer) const {
  const int64_t n_tokens = graph_.n_tokens;
  if (static_cast<int64_t>(in.tokens.size()) != n_tokens || static_cast<int64_t>(in.positions.size()) != n_tokens ||
      static_cast<int64_t>(in.output_rows.size()) != graph_.n_outputs) {
    return Status::Internal("plan: batch inputs do not match the compiled shape");
  }
  if (!in.seqs.empty()) {
    int64_t next = 0;
    for (const SeqSlice& s : in.seqs) {
      if (s.row_begin != next || s.row_end <= s.row_begin || s.row_end > n_tokens) {
        return Status::Internal("plan: sequence slices must cover the batch rows in order");
      }
      next = s.row_end;
    }
    if (next != n_tokens) return Status::Internal("plan: sequence slices must cover the batch rows in order");
  }
  auto buf = [&](int32_t id) { return reinterpret_cast<float*>(static_cast<char*>(arena) + offsets_[id]); };

  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const Node& node = graph_.nodes[i];
    if (node.op == OpKind::kTokens) continue;
    if (in.abort != nullptr && in.abort->load(std::memory_order_relaxed)) {
      return Status::Unavailable("forward pass aborted by its caller");
    }
    float* out = buf(static_cast<int32_t>(i));
    const int64_t rows = node.rows, cols = node.cols;
    switch (node.op) {
      case OpKind::kTokens: break;
      case OpKind::kEmbed: {
        for (int32_t t : in.tokens) {
          if (t < 0 || t >= node.weight.rows) {
            return Status::InvalidArgument("token id " + std::to_string(t) + " is outside the vocabulary (" +
                                           std::to_string(node.weight.rows) + " tokens)");
          }
        }
        cpu::GetRows(node.weight.type, node.weight.data, cols, in.tokens.data(), rows, out, cols);
        if (node.scale != 1.0f) cpu::Scale(out, rows * cols, node.scale);
        break;
      }
      case OpKind::kMatMul:
      case OpKind::kMatMulGlu: {
        if (node.computed_by >= 0) break;  // written by its group's leader
        cpu::MatMulOutput outs[cpu::kMaxMatMulGroup];
        const int n_outs = GroupOutputs(graph_, static_cast<int32_t>(i), outs);
        outs[0].y = out;
        for (size_t k = 0; k < node.siblings.size(); ++k) outs[k + 1].y = buf(node.siblings[k]);
        cpu::MatMulGroupArgs args = GroupArgs(node, outs, n_outs);
        args.x = buf(node.inputs[0]);
        args.scratch = scratch;
        cpu::MatMulGroup(pool, args);
        break;
      }
      case OpKind::kAddBias: {
        const float* x = buf(node.inputs[0]);
        const float* b = static_cast<const float*>(node.weight.data);
        for (int64_t r = 0; r < rows; ++r) cpu::Add(x + r * cols, b, cols, out + r * cols);
        break;
      }
      case OpKind::kRmsNorm: {
        const float* x = buf(node.inputs[0]);
        const int64_t n_rows = rows * (cols / node.group);
        cpu::RmsNorm(x, node.group, static_cast<const float*>(node.weight.data), node.eps, n_rows, node.group,
                     out, node.group);
        break;
      }
      case OpKind::kRope: {
        const float* x = buf(node.inputs[0]);
        if (x != out) std::memcpy(out, x, static_cast<size_t>(rows * cols) * sizeof(float));
        const RopeParams& p = node.rope;
        cpu::Rope(cpu::RopeArgs{.x = out, .x_stride = cols, .n_tokens = rows, .n_heads = p.n_heads,
                                .head_dim = p.head_dim, .n_rot = p.n_rot, .pos = in.positions.data(),
                                .mode = p.mode, .base = p.base, .freq_scale = p.freq_scale,
                                .freq_factors = p.freq_factors, .attn_factor = p.attn_factor,
                                .ext_factor = p.ext_factor, .beta_fast = p.beta_fast,
                                .beta_slow = p.beta_slow, .n_ctx_orig = p.n_ctx_orig});
        break;
      }
      case OpKind::kAttention: {
        const AttentionParams& p = node.attn;
        const float* q = buf(node.inputs[0]);
        const float* k = buf(node.inputs[1]);
        const float* v = buf(node.inputs[2]);
        const int64_t kv_width = p.n_kv_head * p.head_dim;
        const int64_t k_cols = graph_.nodes[node.inputs[1]].cols;
        const int64_t v_cols = graph_.nodes[node.inputs[2]].cols;
        const SeqSlice whole{.row_begin = 0, .row_end = rows, .kv = in.kv, .n_kv = in.n_kv};
        const std::span<const SeqSlice> seqs = in.seqs.empty() ? std::span<const SeqSlice>(&whole, 1) : in.seqs;
        for (const SeqSlice& s : seqs) {
          if (p.kv_layer < 0 || p.kv_layer >= static_cast<int32_t>(s.kv.size())) {
            return Status::Internal("plan: no KV cache view for layer " + std::to_string(p.kv_layer));
          }
          const KvLayerView& kv = s.kv[p.kv_layer];
          const int64_t b = s.row_begin, n = s.row_end - s.row_begin;
          cpu::StoreKv(k + b * k_cols, k_cols, v + b * v_cols, v_cols, n, kv_width, in.positions.data() + b,
                       kv.k_blocks, kv.v_blocks, kv.block_size);
          cpu::Attention(pool, cpu::AttentionArgs{
                                   .q = q + b * cols, .q_stride = cols, .n_tokens = n, .n_head = p.n_head,
                                   .n_kv_head = p.n_kv_head, .head_dim = p.head_dim,
                                   .q_pos = in.positions.data() + b,
                                   .kv = cpu::KvView{.k_blocks = kv.k_blocks, .v_blocks = kv.v_blocks,
                                                     .block_size = kv.block_size},
                                   .n_kv = s.n_kv, .window = p.window, .scale = p.scale, .out = out + b * cols,
                                   .out_stride = cols});
        }
        break;
      }
      case OpKind::kGlu:
        cpu::Glu(node.act, buf(node.inputs[0]), buf(node.inputs[1]), rows * cols, out);
        break;
      case OpKind::kAdd:
        if (node.pre_norm) {  // out = a + RmsNorm(b) (out never aliases an input)
          cpu::RmsNorm(buf(node.inputs[1]), cols, static_cast<const float*>(node.norm.data), node.eps, rows, cols,
                       out, cols);
          cpu::Add(buf(node.inputs[0]), out, rows * cols, out);
        } else {
          cpu::Add(buf(node.inputs[0]), buf(node.inputs[1]), rows * cols, out);
        }
        break;
      case OpKind::kScale: {
        const float* x = buf(node.inputs[0]);
        if (x != out) std::memcpy(out, x, static_cast<size_t>(rows * cols) * sizeof(float));
        cpu::Scale(out, rows * cols, node.scale);
        break;
      }
      case OpKind::kSoftcap: {
        const float* x = buf(node.inputs[0]);
        const float cap = node.scale;
        for (int64_t j = 0; j < rows * cols; ++j) out[j] = cap * std::tanh(x[j] / cap);
        break;
      }
      case OpKind::kSelectRows: {
        const float* x = buf(node.inputs[0]);
        const int64_t src_rows = graph_.nodes[node.inputs[0]].rows;
        for (int64_t r = 0; r < rows; ++r) {
          const int32_t src = in.output_rows[r];
          if (src < 0 || src >= src_rows) return Status::Internal("plan: output row out of range");
          std::memcpy(out + r * cols, x + src * cols, static_cast<size_t>(cols) * sizeof(float));
        }
        break;
      }
    }
    if (observer != nullptr && *observer) (*observer)(node, out);
  }
  const Node& o = graph_.nodes[graph_.output];
  return std::span<const float>(buf(graph_.output), static_cast<size_t>(o.rows * o.cols));
}

}  // namespace gannet::graph
