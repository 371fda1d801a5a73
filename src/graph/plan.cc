#include "graph/plan.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>

#include "kernels/backend.h"

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

kernels::Weight W(const WeightRef& w) {
  return kernels::Weight{.type = w.type, .data = w.data, .rows = w.rows, .cols = w.cols};
}

// The arguments of the Backend::MatMul that node `id` (a kMatMul leader or a kMatMulGlu) runs; y
// pointers, x and scratch are filled in at execution.
int GroupOutputs(const Graph& g, int32_t id, kernels::MatMulOutput* outs) {
  const Node& node = g.nodes[id];
  auto out = [&](const Node& n, const WeightRef& w) {
    return kernels::MatMulOutput{.w = W(w), .y = nullptr, .y_stride = n.cols};
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

kernels::MatMulArgs GroupArgs(const Node& node, const kernels::MatMulOutput* outs, int n_outs) {
  return kernels::MatMulArgs{
      .x_stride = node.weight.cols,
      .n_in = node.weight.cols,
      .n_tokens = node.rows,
      .outputs = std::span<const kernels::MatMulOutput>(outs, static_cast<size_t>(n_outs)),
      .pre_norm = node.pre_norm,
      .norm_weight = static_cast<const float*>(node.norm.data),
      .norm_eps = node.eps,
      .glu = node.op == OpKind::kMatMulGlu,
      .act = node.act};
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
      if (in >= static_cast<int32_t>(i))
        return Status::Internal("plan: node '" + graph.nodes[i].name + "' uses a later node");
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
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return sizes[a] > sizes[b]; });
  plan.offsets_.assign(n, kNoBuffer);
  std::vector<Interval> placed;
  for (int32_t i : order) {
    std::vector<std::pair<size_t, size_t>> busy;
    for (const Interval& iv : placed) {
      if (iv.first <= last_use[i] && first[i] <= iv.last)
        busy.emplace_back(iv.offset, iv.offset + iv.size);
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
  plan.graph_ = std::move(graph);
  return plan;
}

size_t Plan::scratch_bytes(const kernels::Backend& backend) const {
  size_t bytes = 0;
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const Node& node = graph_.nodes[i];
    if ((node.op == OpKind::kMatMul && node.computed_by < 0) || node.op == OpKind::kMatMulGlu) {
      kernels::MatMulOutput outs[kernels::kMaxMatMulGroup];
      const int n_outs = GroupOutputs(graph_, static_cast<int32_t>(i), outs);
      bytes = std::max(bytes, backend.MatMulScratchBytes(GroupArgs(node, outs, n_outs)));
    }
  }
  return AlignUp(bytes);
}

Result<std::span<const float>> Plan::Execute(kernels::Backend& backend, const BatchInputs& in,
                                             void* arena, void* scratch,
                                             const NodeObserver* observer) const {
  const int64_t n_tokens = graph_.n_tokens;
  if (static_cast<int64_t>(in.tokens.size()) != n_tokens ||
      static_cast<int64_t>(in.positions.size()) != n_tokens ||
      static_cast<int64_t>(in.output_rows.size()) != graph_.n_outputs) {
    return Status::Internal("plan: batch inputs do not match the compiled shape");
  }
  if (!in.seqs.empty()) {
    int64_t next = 0;
    for (const SeqSlice& s : in.seqs) {
      if (s.row_begin != next || s.row_end <= s.row_begin || s.row_end > n_tokens) {
        return Status::Internal("plan: sequence slices must cover the batch rows in order");
      }
      if (s.tree_mask != nullptr &&
          (s.row_end - s.row_begin > kernels::kMaxTreeTokens || s.tree_base < 0 ||
           s.n_kv != s.tree_base + (s.row_end - s.row_begin))) {
        return Status::Internal("plan: a token tree has more than 64 rows or a wrong n_kv");
      }
      next = s.row_end;
    }
    if (next != n_tokens)
      return Status::Internal("plan: sequence slices must cover the batch rows in order");
  }
  auto buf = [&](int32_t id) {
    return reinterpret_cast<float*>(static_cast<char*>(arena) + offsets_[id]);
  };

  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const Node& node = graph_.nodes[i];
    if (node.op == OpKind::kTokens) continue;
    if (in.abort != nullptr && in.abort->load(std::memory_order_relaxed)) {
      return Status::Unavailable("forward pass aborted by its caller");
    }
    float* out = buf(static_cast<int32_t>(i));
    const int64_t rows = node.rows, cols = node.cols;
    switch (node.op) {
      case OpKind::kTokens:
        break;
      case OpKind::kEmbed: {
        for (int32_t t : in.tokens) {
          if (t < 0 || t >= node.weight.rows) {
            return Status::InvalidArgument("token id " + std::to_string(t) +
                                           " is outside the vocabulary (" +
                                           std::to_string(node.weight.rows) + " tokens)");
          }
        }
        backend.Embed(W(node.weight), in.tokens, node.scale, out);
        break;
      }
      case OpKind::kMatMul:
      case OpKind::kMatMulGlu: {
        if (node.computed_by >= 0) break;  // written by its group's leader
        kernels::MatMulOutput outs[kernels::kMaxMatMulGroup];
        const int n_outs = GroupOutputs(graph_, static_cast<int32_t>(i), outs);
        outs[0].y = out;
        for (size_t k = 0; k < node.siblings.size(); ++k) outs[k + 1].y = buf(node.siblings[k]);
        kernels::MatMulArgs args = GroupArgs(node, outs, n_outs);
        args.x = buf(node.inputs[0]);
        args.scratch = scratch;
        backend.MatMul(args);
        break;
      }
      case OpKind::kAddBias:
        backend.AddBias(buf(node.inputs[0]), static_cast<const float*>(node.weight.data), rows,
                        cols, out);
        break;
      case OpKind::kRmsNorm:
        backend.RmsNorm(buf(node.inputs[0]), static_cast<const float*>(node.weight.data), node.eps,
                        rows * (cols / node.group), node.group, out);
        break;
      case OpKind::kRope:
        backend.Rope(node.rope, buf(node.inputs[0]), rows, in.positions.data(), out);
        break;
      case OpKind::kAttention: {
        const AttentionParams& p = node.attn;
        const SeqSlice whole{.row_begin = 0, .row_end = rows, .kv = in.kv, .n_kv = in.n_kv};
        const std::span<const SeqSlice> seqs =
            in.seqs.empty() ? std::span<const SeqSlice>(&whole, 1) : in.seqs;
        for (const SeqSlice& s : seqs) {
          if (p.kv_layer < 0 || p.kv_layer >= static_cast<int32_t>(s.kv.size())) {
            return Status::Internal("plan: no KV cache view for layer " +
                                    std::to_string(p.kv_layer));
          }
        }
        backend.Attention(kernels::AttentionArgs{.q = buf(node.inputs[0]),
                                                 .k = buf(node.inputs[1]),
                                                 .v = buf(node.inputs[2]),
                                                 .q_stride = cols,
                                                 .k_stride = graph_.nodes[node.inputs[1]].cols,
                                                 .v_stride = graph_.nodes[node.inputs[2]].cols,
                                                 .n_tokens = rows,
                                                 .n_head = p.n_head,
                                                 .n_kv_head = p.n_kv_head,
                                                 .head_dim = p.head_dim,
                                                 .positions = in.positions.data(),
                                                 .seqs = seqs,
                                                 .kv_layer = p.kv_layer,
                                                 .window = p.window,
                                                 .scale = p.scale,
                                                 .out = out,
                                                 .out_stride = cols});
        break;
      }
      case OpKind::kGlu:
        backend.Glu(node.act, buf(node.inputs[0]), buf(node.inputs[1]), rows * cols, out);
        break;
      case OpKind::kAdd:
        if (node.pre_norm) {  // out = a + RmsNorm(b) (out never aliases an input)
          backend.AddRmsNorm(buf(node.inputs[0]), buf(node.inputs[1]),
                             static_cast<const float*>(node.norm.data), node.eps, rows, cols, out);
        } else {
          backend.Add(buf(node.inputs[0]), buf(node.inputs[1]), rows * cols, out);
        }
        break;
      case OpKind::kScale:
        backend.Scale(buf(node.inputs[0]), rows * cols, node.scale, out);
        break;
      case OpKind::kSoftcap:
        backend.Softcap(buf(node.inputs[0]), rows * cols, node.scale, out);
        break;
      case OpKind::kSelectRows: {
        const int64_t src_rows = graph_.nodes[node.inputs[0]].rows;
        const std::span<const int32_t> sel = in.output_rows.first(static_cast<size_t>(rows));
        for (int32_t src : sel) {
          if (src < 0 || src >= src_rows) return Status::Internal("plan: output row out of range");
        }
        backend.GatherRows(buf(node.inputs[0]), cols, sel, out);
        break;
      }
    }
    if (observer != nullptr && *observer) (*observer)(node, out);
  }
  const Node& o = graph_.nodes[graph_.output];
  return std::span<const float>(buf(graph_.output), static_cast<size_t>(o.rows * o.cols));
}

}  // namespace gannet::graph
