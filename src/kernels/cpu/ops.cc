// Row-wise and element-wise CPU ops: ISA dispatch and the ops that have one portable version
// (RoPE, GetRows, Scale). The scalar target of a dispatched op is its reference twin.
#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "base/status.h"
#include "kernels/cpu/ops_internal.h"
#include "kernels/cpu/ref.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {

void RmsNorm(const float* x, int64_t x_stride, const float* w, float eps, int64_t n_rows,
             int64_t n_cols, float* out, int64_t out_stride, Isa isa) {
  if (isa == Isa::kScalar) {
    ref::RmsNorm(x, x_stride, w, eps, n_rows, n_cols, out, out_stride);
  } else {
    avx2::RmsNorm(x, x_stride, w, eps, n_rows, n_cols, out, out_stride);
  }
}

void Glu(GluAct act, const float* gate, const float* up, int64_t n, float* out, Isa isa) {
  if (isa == Isa::kScalar) {
    ref::Glu(act, gate, up, n, out);
  } else {
    avx2::Glu(act, gate, up, n, out);
  }
}

void Add(const float* a, const float* b, int64_t n, float* out, Isa isa) {
  if (isa == Isa::kScalar) {
    ref::Add(a, b, n, out);
  } else {
    avx2::Add(a, b, n, out);
  }
}

void Scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void RopeTable(const RopeArgs& a, int64_t t0, int64_t t1, float* cs) {
  const int64_t half = a.n_rot / 2;
  const float theta_scale = std::pow(a.base, -2.0f / static_cast<float>(a.n_rot));
  float corr[2] = {0.0f, 0.0f};
  if (a.ext_factor != 0.0f) {
    ref::RopeYarnCorrDims(a.n_rot, a.n_ctx_orig, a.base, a.beta_fast, a.beta_slow, corr);
  }
  const float yarn_mscale = a.ext_factor != 0.0f
                                ? a.attn_factor * (1.0f + 0.1f * std::log(1.0f / a.freq_scale))
                                : a.attn_factor;
  for (int64_t t = t0; t < t1; ++t) {
    float* row = cs + t * 2 * half;
    // theta_i = pos * theta_scale^i by repeated f32 multiplication, as ggml_rope_cache_init.
    float theta = static_cast<float>(a.pos[t]);
    for (int64_t i = 0; i < half; ++i, theta *= theta_scale) {
      const float theta_extrap = a.freq_factors ? theta / a.freq_factors[i] : theta;
      const float theta_interp = a.freq_scale * theta_extrap;
      float th = theta_interp;
      if (a.ext_factor != 0.0f) {  // YaRN: blend interpolation and extrapolation per pair
        const float y = (static_cast<float>(i) - corr[0]) / std::max(0.001f, corr[1] - corr[0]);
        const float mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * a.ext_factor;
        th = theta_interp * (1.0f - mix) + theta_extrap * mix;
      }
      row[i] = std::cos(th) * yarn_mscale;
      row[half + i] = std::sin(th) * yarn_mscale;
    }
  }
}

void RopeApply(const RopeArgs& a, const float* cs, int64_t t0, int64_t t1) {
  const int64_t half = a.n_rot / 2;
  for (int64_t t = t0; t < t1; ++t) {
    const float* c = cs + t * 2 * half;
    const float* s = c + half;
    float* xt = a.x + t * a.x_stride;
    for (int64_t h = 0; h < a.n_heads; ++h) {
      float* x = xt + h * a.head_dim;
      if (a.mode == RopeMode::kNeox) {
        float* __restrict lo = x;
        float* __restrict hi = x + half;
        for (int64_t i = 0; i < half; ++i) {
          const float x0 = lo[i], x1 = hi[i];
          lo[i] = x0 * c[i] - x1 * s[i];
          hi[i] = x0 * s[i] + x1 * c[i];
        }
      } else {
        for (int64_t i = 0; i < half; ++i) {
          const float x0 = x[2 * i], x1 = x[2 * i + 1];
          x[2 * i] = x0 * c[i] - x1 * s[i];
          x[2 * i + 1] = x0 * s[i] + x1 * c[i];
        }
      }
    }
  }
}

void Rope(const RopeArgs& a) {
  std::vector<float> cs(static_cast<size_t>(a.n_tokens * (a.n_rot / 2) * 2));
  RopeTable(a, 0, a.n_tokens, cs.data());
  RopeApply(a, cs.data(), 0, a.n_tokens);
}

void StoreKv(const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t n_tokens,
             int64_t row_elems, const int32_t* pos, uint16_t* const* k_blocks,
             uint16_t* const* v_blocks, int64_t block_size, Isa isa) {
  if (isa == Isa::kScalar) {
    ref::StoreKv(k, k_stride, v, v_stride, n_tokens, row_elems, pos, k_blocks, v_blocks,
                 block_size);
  } else {
    avx2::StoreKv(k, k_stride, v, v_stride, n_tokens, row_elems, pos, k_blocks, v_blocks,
                  block_size);
  }
}

void GetRows(DType wtype, const void* w, int64_t n_cols, const int32_t* ids, int64_t n_ids,
             float* out, int64_t out_stride) {
  const std::optional<int64_t> row_bytes = RowBytes(wtype, n_cols);
  GANNET_CHECK(row_bytes.has_value());
  const auto* base = static_cast<const uint8_t*>(w);
  for (int64_t i = 0; i < n_ids; ++i) {
    DequantizeRow(wtype, base + static_cast<int64_t>(ids[i]) * *row_bytes, out + i * out_stride,
                  n_cols);
  }
}

}  // namespace gannet::cpu
