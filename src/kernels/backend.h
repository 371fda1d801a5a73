// Backend: the operations a compiled graph (graph/plan.h) executes, one call per graph node, on one
// device. graph/ knows only this interface; kernels/cpu implements it (cpu::CpuBackend), a CUDA
// backend will too. An op describes a whole node (all its tokens, heads and sequences), so a device
// backend can run it as one launch.
//
// Memory: every activation pointer (x, out, q, ...) points into the plan's arena, and `scratch`
// into the caller's scratch block, both memory the backend addresses directly (host memory for the
// CPU backend). Weights are borrowed views into the model file (kernels::Weight), or a copy the
// backend made at load (PrepareMatMulWeights) in a layout of its own. No op allocates.
// Activations are row-major f32 [rows, cols], contiguous unless a stride is given (in elements).
// The fused ops (MatMul with several outputs, pre_norm or glu; AddRmsNorm) give exactly the bits of
// the same backend's separate ops: fusion is decided without knowing the device, and fused and
// unfused plans are compared bit for bit (tests/unit/graph/fuse_test.cc).
// Thread-safety: one caller at a time per Backend object (ops may use all of its threads).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kernels/types.h"

namespace gannet::kernels {

// The K/V storage of one cache layer of one sequence: f16 values in blocks of `block_size` token
// slots; slot s of a block holds [n_kv_head, head_dim] values; position p lives in block
// p / block_size, slot p % block_size. (A single-sequence cache is one block of n_ctx slots.)
struct KvLayerView {
  uint16_t* const* k_blocks = nullptr;
  uint16_t* const* v_blocks = nullptr;
  int64_t block_size = 0;
};

// One sequence of a multi-sequence batch: token rows [row_begin, row_end) belong to it, their
// K/V go into its cache views, and they attend to its cache positions [0, n_kv) only.
//
// Token tree (tree_mask set; the verification pass of speculative decoding): the rows are draft
// tokens forming a tree. Row t (i = t - row_begin) stores its K/V in cache slot tree_base + i,
// NOT at positions[t], and attends the slots [0, tree_base) (the committed past, all of them, a
// slot p counting as position p) plus tree_base + j for every bit j of tree_mask[i] (its
// ancestors and itself: bit i is set). positions[t] is the token's position for RoPE and the
// window; slot tree_base + j counts as position positions[row_begin + j]. A row's result has the
// bits of its root-to-node path evaluated as an ordinary causal sequence.
// REQUIRES (tree): row_end - row_begin <= 64, n_kv == tree_base + (row_end - row_begin).
struct SeqSlice {
  int64_t row_begin = 0, row_end = 0;
  std::span<const KvLayerView> kv;  // one per KV cache layer (this sequence's block table)
  int64_t n_kv = 0;
  const uint64_t* tree_mask = nullptr;  // [row_end - row_begin], or null: an ordinary sequence
  int64_t tree_base = 0;
};

// One product of a MatMul: y [n_tokens, w.rows] (row stride y_stride) = x . w^T.
struct MatMulOutput {
  Weight w;
  float* y = nullptr;  // unused for the up half of a GLU pair
  int64_t y_stride = 0;
};

// Up to kMaxMatMulGroup products of ONE activation matrix x [n_tokens, n_in] (row stride
// x_stride), each output with the bits a separate matmul gives it (after a separate RmsNorm when
// pre_norm, before a separate Glu when glu).
struct MatMulArgs {
  const float* x = nullptr;
  int64_t x_stride = 0;
  int64_t n_in = 0, n_tokens = 0;
  std::span<const MatMulOutput> outputs;  // 1 .. kMaxMatMulGroup, every w.cols == n_in
  // Pre-norm: each x row is used as RmsNorm(row, norm_weight, norm_eps) (norm_weight may be null).
  bool pre_norm = false;
  const float* norm_weight = nullptr;
  float norm_eps = 0.0f;
  // GLU pair: outputs[0] is the gate, outputs[1] the up projection (same rows); outputs[0].y
  // receives act(gate) * up.
  bool glu = false;
  GluAct act = GluAct::kSilu;
  void* scratch = nullptr;  // at least MatMulScratchBytes(*this) bytes, 64-byte aligned
};

// Causal attention of one layer over the batch's sequences. For each sequence s (seqs cover the
// rows [0, n_tokens) in order): its rows of k and v are first stored into s.kv[kv_layer] at their
// positions (their tree slots for a token tree; converted to f16), then out[t, h, :] =
// softmax_p(scale * q[t, h, :] . K[p, h / (n_head / n_kv_head), :]) V[p, ...] over its positions p
// <= positions[t], p < s.n_kv and, when window > 0, positions[t] - p < window (a token tree's rows:
// over the slots SeqSlice names).
struct AttentionArgs {
  const float* q = nullptr;  // [n_tokens, n_head * head_dim], row stride q_stride
  const float* k = nullptr;  // [n_tokens, n_kv_head * head_dim], row stride k_stride
  const float* v = nullptr;  // [n_tokens, n_kv_head * head_dim], row stride v_stride
  int64_t q_stride = 0, k_stride = 0, v_stride = 0;
  int64_t n_tokens = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
  const int32_t* positions = nullptr;  // [n_tokens]
  std::span<const SeqSlice> seqs;
  int32_t kv_layer = 0;  // REQUIRES: < seqs[i].kv.size() for every i
  int64_t window = 0;    // 0: full causal attention
  float scale = 1.0f;
  float* out = nullptr;  // [n_tokens, n_head * head_dim], row stride out_stride
  int64_t out_stride = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const char* name() const = 0;

  // Once, after loading and before any op (not concurrently with ops): the backend may copy
  // weights its MatMul reads into a layout its kernels stream faster. From then on a MatMul output
  // whose w.data is a copied weight's data reads the copy, with the same result bits, and so may
  // Embed (the same values). `release` (may be empty) receives each part of a copied weight's
  // original once it has been copied, in pieces of a few MiB, so the caller can let that memory
  // go (drop the file pages) while the copy proceeds: peak memory stays near the copies' size.
  // Returns, per weight, whether it was copied. Default: nothing is copied.
  using ReleaseFn = std::function<void(std::span<const uint8_t> original)>;
  virtual std::vector<bool> PrepareMatMulWeights(std::span<const Weight> weights,
                                                 const ReleaseFn& release) {
    (void)release;
    return std::vector<bool>(weights.size(), false);
  }
  // Bytes of the copies PrepareMatMulWeights made.
  virtual size_t prepared_weight_bytes() const { return 0; }
  // A backend for a second model over the same weights (self-speculation's draft,
  // engine/self_draft.h): on this backend's device and threads, reading the copies this one
  // prepared; its own PrepareMatMulWeights copies only weights this one has not copied. Null when
  // the backend cannot share (the caller makes a fresh one). REQUIRES: this backend outlives it,
  // and the two never run ops at the same time.
  virtual std::unique_ptr<Backend> NewSharingWeights() const { return nullptr; }

  // dst = rows `rows` of w in its original layout (RowBytes(w.type, w.cols) bytes each, one after
  // another), the same bytes whether or not PrepareMatMulWeights copied w: read from the copy
  // when there is one (the original's pages may have been released). Default: from w.data.
  // REQUIRES: 0 <= rows[i] < w.rows; w.type has a row layout (RowBytes).
  virtual void ReadWeightRows(const Weight& w, std::span<const int32_t> rows, void* dst) const {
    const size_t rb = static_cast<size_t>(*RowBytes(w.type, w.cols));
    for (size_t i = 0; i < rows.size(); ++i) {
      std::memcpy(static_cast<uint8_t*>(dst) + i * rb,
                  static_cast<const uint8_t*>(w.data) + static_cast<size_t>(rows[i]) * rb, rb);
    }
  }

  // out [n, table.cols] = table rows tokens[i] as f32, times scale.
  // REQUIRES: 0 <= tokens[i] < table.rows.
  virtual void Embed(const Weight& table, std::span<const int32_t> tokens, float scale,
                     float* out) = 0;

  // Bytes of scratch a MatMul with these shapes and types needs (pointers in `a` are not read).
  virtual size_t MatMulScratchBytes(const MatMulArgs& a) const = 0;
  // REQUIRES: n_in is a multiple of every weight type's block size; the backend loads the types.
  virtual void MatMul(const MatMulArgs& a) = 0;

  // out [rows, cols] = x + bias (a row vector of cols values, broadcast over rows).
  virtual void AddBias(const float* x, const float* bias, int64_t rows, int64_t cols,
                       float* out) = 0;
  // out [rows, cols] = each row / sqrt(mean(row^2) + eps) * w (w: cols values, may be null).
  // In place allowed (out == x).
  virtual void RmsNorm(const float* x, const float* w, float eps, int64_t rows, int64_t cols,
                       float* out) = 0;
  // out [n_tokens, n_heads * head_dim] = x rotated at positions[t] (x == out allowed).
  virtual void Rope(const RopeParams& p, const float* x, int64_t n_tokens, const int32_t* positions,
                    float* out) = 0;
  virtual void Attention(const AttentionArgs& a) = 0;
  // out = act(gate) * up (n values). In place allowed.
  virtual void Glu(GluAct act, const float* gate, const float* up, int64_t n, float* out) = 0;
  // out = a + b (n values). In place allowed.
  virtual void Add(const float* a, const float* b, int64_t n, float* out) = 0;
  // out [rows, cols] = a + RmsNorm(b, w, eps) row by row (a post-norm residual add).
  // REQUIRES: out aliases neither a nor b.
  virtual void AddRmsNorm(const float* a, const float* b, const float* w, float eps, int64_t rows,
                          int64_t cols, float* out) = 0;
  // out = x * s (n values; x == out allowed).
  virtual void Scale(const float* x, int64_t n, float s, float* out) = 0;
  // out = cap * tanh(x / cap) (n values; x == out allowed).
  virtual void Softcap(const float* x, int64_t n, float cap, float* out) = 0;
  // out [rows.size(), cols] = x rows rows[i]. REQUIRES: every index is a row of x; out does not
  // alias x.
  virtual void GatherRows(const float* x, int64_t cols, std::span<const int32_t> rows,
                          float* out) = 0;
};

}  // namespace gannet::kernels
