// CPU kernels: the operations the graph executes, with runtime dispatch by CPU features.
//
// Every function here has a scalar reference twin (kernels/cpu/ref.h) and is checked against it
// by tests/unit/kernels/cpu_conformance_test.cc for every compiled ISA target.
// Layouts are row-major with explicit strides in elements; shapes are in comments.
// Thread-safety: functions are reentrant; those taking a ThreadPool use all of its threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/thread_pool.h"
#include "kernels/types.h"
#include "tensor/dtype.h"

namespace gannet::cpu {

// The op parameters every backend shares (kernels/types.h).
using kernels::GluAct;
using kernels::kMaxMatMulGroup;
using kernels::kMaxTreeTokens;
using kernels::RopeMode;

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
const char* IsaName(Isa isa);

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false;
};
const CpuFeatures& DetectCpuFeatures();  // probed once

// The best ISA this build has a target for and this CPU supports (probed once).
Isa BestIsa();
// The target named `name` ("scalar", "avx2", "avx512", as IsaName writes them) when it is
// available here, else nullopt (for comparing targets in one build:
// engine::ModelRunnerOptions::isa, which the CLI takes from GANNET_ISA).
std::optional<Isa> IsaByName(std::string_view name);
// Targets compiled into this binary and runnable here (for the conformance test and `--isa`).
int AvailableIsas(Isa out[3]);

// ---- matrix multiplication ------------------------------------------------------------------
// y[t, o] = sum_i W[o, i] * x[t, i]   for t < n_tokens, o < n_out.
// W: n_out rows of n_in values in `wtype`, each row RowBytes(wtype, n_in) bytes, contiguous.
// x: [n_tokens, n_in] f32 with row stride x_stride; y: [n_tokens, n_out] f32, stride y_stride.
// Quantized weights are never dequantized to memory: the activation rows are quantized to the
// weight type's dot partner (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants)
// and integer dot products run over blocks.
struct MatMulArgs {
  DType wtype = DType::kF32;
  const void* w = nullptr;
  int64_t n_out = 0, n_in = 0;
  // w holds the rows interleaved in groups (RepackRows, repack.h) instead of the file layout.
  // REQUIRES (true): CanRepack(wtype, isa).
  bool w_interleaved = false;
  const float* x = nullptr;
  int64_t x_stride = 0;
  int64_t n_tokens = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  // Caller-provided memory for the quantized activations (and the tables some interleaved kernels
  // read), at least MatMulScratchBytes(wtype, n_in, n_tokens, w_interleaved).
  void* scratch = nullptr;
};
size_t MatMulScratchBytes(DType wtype, int64_t n_in, int64_t n_tokens, bool w_interleaved = false);
// REQUIRES: n_in is a multiple of wtype's block size; wtype can_load.
void MatMul(ThreadPool& pool, const MatMulArgs& a, Isa isa = BestIsa());

// Several products of ONE activation matrix in one parallel pass (the graph's fused matmuls:
// Q/K/V, gate and up): x is (optionally RMS-normalised and) quantized once per dot-partner type,
// and the threads claim row chunks of every output from one counter, so small matrices share a
// pass instead of each paying for a wake-up and a barrier. Every output gets exactly the bits a
// separate MatMul (after a separate RmsNorm, before a separate Glu) would give it.
struct MatMulOutput {
  DType wtype = DType::kF32;
  const void* w = nullptr;
  int64_t n_out = 0;
  bool w_interleaved = false;  // as MatMulArgs::w_interleaved
  float* y = nullptr;  // [n_tokens, n_out], stride y_stride; unused for the up half of a GLU pair
  int64_t y_stride = 0;
};
struct MatMulGroupArgs {
  const float* x = nullptr;  // [n_tokens, n_in], stride x_stride
  int64_t x_stride = 0;
  int64_t n_in = 0, n_tokens = 0;
  const MatMulOutput* outputs = nullptr;
  int n_outputs = 0;  // 1 .. kMaxMatMulGroup
  // Pre-norm: each x row is first replaced by RmsNorm(row, norm_weight, norm_eps) (norm_weight
  // may be null), as a separate RmsNorm of the whole row would.
  bool pre_norm = false;
  const float* norm_weight = nullptr;
  float norm_eps = 0.0f;
  // GLU pair: outputs[0] is the gate, outputs[1] the up projection (same n_out); outputs[0].y
  // receives act(gate) * up, computed tile by tile (neither product is written whole).
  bool glu = false;
  GluAct act = GluAct::kSilu;
  void* scratch = nullptr;  // at least MatMulGroupScratchBytes()
};
size_t MatMulGroupScratchBytes(const MatMulGroupArgs& a);
// REQUIRES: as MatMul for every output; glu implies n_outputs == 2 and equal n_out.
void MatMulGroup(ThreadPool& pool, const MatMulGroupArgs& a, Isa isa = BestIsa());

// Rows `ids` of a [n_rows, n_cols] matrix in `wtype`, dequantized to f32: out[i, :] = W[ids[i], :].
void GetRows(DType wtype, const void* w, int64_t n_cols, const int32_t* ids, int64_t n_ids,
             float* out, int64_t out_stride);

// ---- attention ------------------------------------------------------------------------------
// K and V for one layer, stored as f16 in blocks of `block_size` token slots; slot s of a block
// holds [n_kv_head, head_dim] values. Token position p lives in block p / block_size, slot
// p % block_size. (A single-sequence cache is one block of n_ctx slots.)
struct KvView {
  const uint16_t* const* k_blocks = nullptr;
  const uint16_t* const* v_blocks = nullptr;
  int64_t block_size = 0;
};

// out[t, h, :] = softmax_p(scale * q[t, h, :] . K[p, h / (n_head / n_kv_head), :]) V[p, ...]
// over positions p <= q_pos[t] with p < n_kv, and, when window > 0, q_pos[t] - p < window.
// Online softmax over key tiles (no [n_tokens, n_kv] score matrix); GQA shares each K/V row
// among its query heads. q: [n_tokens, n_head, head_dim] stride q_stride per token.
//
// Token tree (tree_mask set; speculative decoding's verification pass): the rows are the nodes of
// a tree of draft tokens whose K/V sit in slots tree_base + t (not at q_pos[t]). Row t attends
// slots p in [0, tree_base) (the committed past, all of them; a slot p there counts as position
// p) and the slots tree_base + j for every bit j of tree_mask[t] (its ancestors and itself; slot
// tree_base + j counts as position q_pos[j]); the window applies to those positions. Keys are
// visited in slot order, so a row's keys are those of its root-to-node path evaluated as an
// ordinary causal chain, in the same order and the same tiles: the output has the same bits.
// REQUIRES (tree): n_tokens <= 64, n_kv == tree_base + n_tokens.
struct AttentionArgs {
  const float* q = nullptr;
  int64_t q_stride = 0;
  int64_t n_tokens = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
  const int32_t* q_pos = nullptr;
  KvView kv;
  int64_t n_kv = 0;
  int64_t window = 0;
  float scale = 1.0f;
  float* out = nullptr;  // [n_tokens, n_head, head_dim], stride out_stride per token
  int64_t out_stride = 0;
  const uint64_t* tree_mask = nullptr;  // [n_tokens] or null (no tree)
  int64_t tree_base = 0;
};
void Attention(ThreadPool& pool, const AttentionArgs& a, Isa isa = BestIsa());
// The same on the calling thread alone, with the same bits: for callers that split the work of
// many small attentions (a decode batch's sequences) over threads themselves, one per thread.
void AttentionOnThisThread(const AttentionArgs& a, Isa isa = BestIsa());
// Requests the cache lines of the rows' keys (K and V, every kv head), up to a sequence's worth
// of a decode step (192 KiB): issued for the next sequence before the current one is computed,
// its keys arrive while that one runs (the kernels themselves request a tile only while
// computing the one before it, which hides little of a short context's trips). A hint only.
void AttentionPrefetch(const AttentionArgs& a);

// Writes token rows of k and v ([n_tokens, n_kv_head * head_dim] f32, strides in elements) into
// the cache at positions pos[t], converting to f16 as F32ToF16 does (round to nearest even; a NaN
// as its sign and 0x7E00), on every ISA.
void StoreKv(const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t n_tokens,
             int64_t row_elems, const int32_t* pos, uint16_t* const* k_blocks,
             uint16_t* const* v_blocks, int64_t block_size, Isa isa = BestIsa());

// ---- element-wise and row-wise ops -----------------------------------------------------------
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w   (w may be null: no scale).
// In place allowed (out == x).
void RmsNorm(const float* x, int64_t x_stride, const float* w, float eps, int64_t n_rows,
             int64_t n_cols, float* out, int64_t out_stride, Isa isa = BestIsa());

// Rotary embedding in place on x: [n_tokens, n_heads, head_dim] (token stride x_stride).
// The first n_rot dims of each head rotate; pairs are (2i, 2i+1) for kNorm and (i, i + n_rot/2)
// for kNeox. theta_i = freq_scale * pos * base^(-2i/n_rot) / freq_factors[i] (freq_factors may
// be null), computed as ggml does (repeated f32 multiplication); cos/sin scaled by attn_factor.
struct RopeArgs {
  float* x = nullptr;
  int64_t x_stride = 0;
  int64_t n_tokens = 0, n_heads = 0, head_dim = 0, n_rot = 0;
  const int32_t* pos = nullptr;
  RopeMode mode = RopeMode::kNorm;
  float base = 10000.0f;
  float freq_scale = 1.0f;
  const float* freq_factors = nullptr;  // [n_rot / 2] or null
  float attn_factor = 1.0f;
  // YaRN extrapolation mix (ext_factor 0 = off), as ggml_rope_ext.
  float ext_factor = 0.0f, beta_fast = 32.0f, beta_slow = 1.0f;
  int64_t n_ctx_orig = 0;
};
void Rope(const RopeArgs& a);
// Rope in two parts, for callers that reuse the angles (every layer of a forward pass rotates
// the same positions) or split the tokens over threads; the same bits as Rope.
// RopeTable: for tokens [t0, t1) and i < h = n_rot / 2, cs[2 h t + i] = cos(theta_i) * mscale
// and cs[2 h t + h + i] = sin(theta_i) * mscale (a.x is not read).
// RopeApply: rotates tokens [t0, t1) of a.x with such a table.
void RopeTable(const RopeArgs& a, int64_t t0, int64_t t1, float* cs);
void RopeApply(const RopeArgs& a, const float* cs, int64_t t0, int64_t t1);

// out = act(gate) * up, n values; act = GELU (tanh approximation) or SiLU. In place allowed.
void Glu(GluAct act, const float* gate, const float* up, int64_t n, float* out,
         Isa isa = BestIsa());

// out = a + b (n values); in place allowed.
void Add(const float* a, const float* b, int64_t n, float* out, Isa isa = BestIsa());
// x *= s (n values).
void Scale(float* x, int64_t n, float s);

}  // namespace gannet::cpu
