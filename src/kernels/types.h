// Device-neutral parameters of the kernels' ops: what graph/ names in its IR, the Backend interface
// (kernels/backend.h) takes, and every implementation (kernels/cpu, later kernels/cuda)
// understands. No code and no device here.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace gannet::kernels {

// The gated activations of GLU feed-forward blocks: act(gate) * up.
enum class GluAct { kGeluTanh, kSilu };

// Rotary embedding pairing: (2i, 2i+1) for kNorm (llama), (i, i + n_rot/2) for kNeox.
enum class RopeMode { kNorm, kNeox };

// The most products of one activation matrix a Backend computes in one MatMul call (Q/K/V,
// gate + up). Every backend takes up to this many; graph/fuse.cc groups sibling matmuls by it.
inline constexpr int kMaxMatMulGroup = 8;
// Most tokens in one token tree (attention's tree masks are 64-bit; kernels/backend.h SeqSlice).
inline constexpr int64_t kMaxTreeTokens = 64;

// Rotary embedding parameters of one projection (queries or keys): the first n_rot dims of each
// of n_heads heads rotate, theta_i = freq_scale * pos * base^(-2i/n_rot) / freq_factors[i], cos and
// sin scaled by attn_factor; YaRN extrapolation mix as ggml_rope_ext (ext_factor 0 = off).
struct RopeParams {
  int64_t n_heads = 0, head_dim = 0, n_rot = 0;
  RopeMode mode = RopeMode::kNorm;
  float base = 10000.0f, freq_scale = 1.0f, attn_factor = 1.0f;
  float ext_factor = 0.0f, beta_fast = 32.0f, beta_slow = 1.0f;
  int64_t n_ctx_orig = 0;
  const float* freq_factors = nullptr;  // [n_rot / 2] or null, borrowed from the model file
};

// A borrowed weight matrix: `rows` rows of `cols` values of `type`, contiguous, each row
// RowBytes(type, cols) bytes (ggml ne = [cols, rows]). Points into the model file's mapping.
struct Weight {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;
};

}  // namespace gannet::kernels
