// Scalar reference twins of the CPU ops. See ref.h.
#include "kernels/cpu/ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::ref {
namespace {

// Row of token position p for kv head `kvh` in a block-paged f16 cache.
const uint16_t* KvRow(const uint16_t* const* blocks, int64_t block_size, int64_t p,
                      int64_t row_elems, int64_t head_offset) {
  return blocks[p / block_size] + (p % block_size) * row_elems + head_offset;
}

// Slots token t attends, in increasing order. Without a tree: p <= pos, p < n_kv, and
// pos - p < window when window > 0. With a tree: every committed slot p < tree_base and the tree
// slots tree_base + j of the bits j of its mask, each at its position (p, or q_pos[j]) for the
// window.
std::vector<int64_t> VisibleKeys(const AttentionArgs& a, int64_t t) {
  const int64_t pos = a.q_pos[t];
  auto in_window = [&](int64_t p) { return a.window <= 0 || pos - p < a.window; };
  std::vector<int64_t> keys;
  if (a.tree_mask == nullptr) {
    for (int64_t p = 0; p < a.n_kv && p <= pos; ++p) {
      if (in_window(p)) keys.push_back(p);
    }
    return keys;
  }
  for (int64_t p = 0; p < a.tree_base; ++p) {
    if (in_window(p)) keys.push_back(p);
  }
  for (int64_t j = 0; j < a.n_tokens && j < 64; ++j) {
    if ((a.tree_mask[t] >> j & 1) != 0 && in_window(a.q_pos[j])) keys.push_back(a.tree_base + j);
  }
  return keys;
}

}  // namespace

void Attention(const AttentionArgs& a) {
  const int64_t d = a.head_dim;
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t row_elems = a.n_kv_head * d;
  std::vector<double> scores;
  std::vector<double> acc(d);
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    const std::vector<int64_t> keys = VisibleKeys(a, t);
    for (int64_t h = 0; h < a.n_head; ++h) {
      const float* q = a.q + t * a.q_stride + h * d;
      float* out = a.out + t * a.out_stride + h * d;
      const int64_t kvh = h / group;
      if (keys.empty()) {
        std::fill(out, out + d, 0.0f);
        continue;
      }
      scores.assign(keys.size(), 0.0);
      double max_score = -INFINITY;
      for (size_t i = 0; i < keys.size(); ++i) {
        const uint16_t* k = KvRow(a.kv.k_blocks, a.kv.block_size, keys[i], row_elems, kvh * d);
        double s = 0.0;
        for (int64_t j = 0; j < d; ++j) s += static_cast<double>(q[j]) * F16ToF32(k[j]);
        scores[i] = s * a.scale;
        max_score = std::max(max_score, scores[i]);
      }
      double sum = 0.0;
      for (double& s : scores) {
        s = std::exp(s - max_score);
        sum += s;
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (size_t i = 0; i < keys.size(); ++i) {
        const uint16_t* v = KvRow(a.kv.v_blocks, a.kv.block_size, keys[i], row_elems, kvh * d);
        for (int64_t j = 0; j < d; ++j) acc[j] += scores[i] * F16ToF32(v[j]);
      }
      for (int64_t j = 0; j < d; ++j) out[j] = static_cast<float>(acc[j] / sum);
    }
  }
}

void StoreKv(const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t n_tokens,
             int64_t row_elems, const int32_t* pos, uint16_t* const* k_blocks,
             uint16_t* const* v_blocks, int64_t block_size) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t p = pos[t];
    uint16_t* kd = k_blocks[p / block_size] + (p % block_size) * row_elems;
    uint16_t* vd = v_blocks[p / block_size] + (p % block_size) * row_elems;
    for (int64_t i = 0; i < row_elems; ++i) {
      kd[i] = F32ToF16(k[t * k_stride + i]);
      vd[i] = F32ToF16(v[t * v_stride + i]);
    }
  }
}

void RmsNorm(const float* x, int64_t x_stride, const float* w, float eps, int64_t n_rows,
             int64_t n_cols, float* out, int64_t out_stride) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * x_stride;
    float* o = out + r * out_stride;
    double sum = 0.0;
    for (int64_t i = 0; i < n_cols; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float mean = static_cast<float>(sum / static_cast<double>(n_cols));
    const float inv = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n_cols; ++i) o[i] = xr[i] * inv * (w ? w[i] : 1.0f);
  }
}

void RopeYarnCorrDims(int64_t n_rot, int64_t n_ctx_orig, float base, float beta_fast,
                      float beta_slow, float dims[2]) {
  // The pair index whose wavelength makes `rotations` turns over the original context:
  // n_rot * log(n_ctx_orig / (rotations * 2 pi)) / (2 log(base)), in f32 as ggml has it.
  auto corr_dim = [&](float rotations) {
    return static_cast<float>(n_rot) *
           std::log(static_cast<float>(n_ctx_orig) /
                    (rotations * 2.0f * static_cast<float>(M_PI))) /
           (2.0f * std::log(base));
  };
  const float start = std::floor(corr_dim(beta_fast));
  const float end = std::ceil(corr_dim(beta_slow));
  dims[0] = std::max(0.0f, start);
  dims[1] = std::min(static_cast<float>(n_rot - 1), end);
}

void Rope(const RopeArgs& a) {
  const int64_t half = a.n_rot / 2;
  const float theta_scale = std::pow(a.base, -2.0f / static_cast<float>(a.n_rot));
  float corr[2] = {0.0f, 0.0f};
  RopeYarnCorrDims(a.n_rot, a.n_ctx_orig, a.base, a.beta_fast, a.beta_slow, corr);
  std::vector<float> cos_t(half), sin_t(half);
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    // The cos/sin cache of ggml_rope_cache_init: theta starts at pos and is multiplied by
    // theta_scale once per pair, in f32.
    float theta = static_cast<float>(a.pos[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float ff = a.freq_factors ? a.freq_factors[i] : 1.0f;
      const float theta_extrap = theta / ff;
      const float theta_interp = a.freq_scale * theta_extrap;
      float th = theta_interp;
      float mscale = a.attn_factor;
      if (a.ext_factor != 0.0f) {
        // rope_yarn_ramp with i0 / 2 == i.
        const float y = (static_cast<float>(i) - corr[0]) / std::max(0.001f, corr[1] - corr[0]);
        const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
        const float mix = ramp * a.ext_factor;
        th = theta_interp * (1.0f - mix) + theta_extrap * mix;
        mscale *= 1.0f + 0.1f * std::log(1.0f / a.freq_scale);
      }
      cos_t[i] = std::cos(th) * mscale;
      sin_t[i] = std::sin(th) * mscale;
      theta *= theta_scale;
    }
    for (int64_t h = 0; h < a.n_heads; ++h) {
      float* x = a.x + t * a.x_stride + h * a.head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t i0 = a.mode == RopeMode::kNorm ? 2 * i : i;
        const int64_t i1 = a.mode == RopeMode::kNorm ? 2 * i + 1 : i + half;
        const float x0 = x[i0], x1 = x[i1];
        x[i0] = x0 * cos_t[i] - x1 * sin_t[i];
        x[i1] = x0 * sin_t[i] + x1 * cos_t[i];
      }
    }
  }
}

float GeluTanh(float u) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * u * (1.0f + std::tanh(kSqrt2OverPi * (u + 0.044715f * u * u * u)));
}

float Silu(float u) { return u / (1.0f + std::exp(-u)); }

void Glu(GluAct act, const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = act == GluAct::kGeluTanh ? GeluTanh(gate[i]) : Silu(gate[i]);
    out[i] = g * up[i];
  }
}

void Add(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void Scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void GetRows(DType wtype, const void* w, int64_t n_cols, const int32_t* ids, int64_t n_ids,
             float* out, int64_t out_stride) {
  const int64_t row_bytes = RowBytes(wtype, n_cols).value();
  for (int64_t i = 0; i < n_ids; ++i) {
    const auto* row = static_cast<const uint8_t*>(w) + ids[i] * row_bytes;
    DequantizeRow(wtype, row, out + i * out_stride, n_cols);
  }
}

}  // namespace gannet::cpu::ref
