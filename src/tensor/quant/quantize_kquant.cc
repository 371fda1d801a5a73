// K-quant weight quantizers, following ggml's quantize_row_q{4,5,6}_K_ref: a per-sub-block
// scale search (make_qkx2_quants for the affine Q4_K/Q5_K, make_qx_quants for the symmetric
// Q6_K), then the sub-block scales are themselves quantized (6 or 8 bits) against one f16
// super-block scale, and the values are re-rounded against the scales as stored.
// Same arithmetic, in the same order, so the bytes match llama.cpp's reference quantizer.
#include <cmath>
#include <cstring>

#include "tensor/fp16.h"
#include "tensor/quant/quant_internal.h"
#include "tensor/quant/quant_kquant.h"

namespace gannet::quant_internal {
namespace {

constexpr float kGroupMaxEps = 1e-15f;

int Clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Affine codes L[i] in [0, nmax] with x ~ scale * L - min_out, weighted least squares.
// First a plain min/max grid, then nstep + 1 candidate grids of nmax + rmin + rdelta * k steps
// across [min, max], each refit in closed form; the best weighted squared error wins.
// Returns the scale; *min_out is the (non-negative) offset to subtract.
float MakeAffineQuants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out,
                       float rmin, float rdelta, int nstep) {
  float mn = x[0], mx = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *min_out = -mn;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (mx - mn);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = Clamp(NearestInt(iscale * (x[i] - mn)), 0, nmax);
    L[i] = static_cast<uint8_t>(l);
    const float diff = scale * static_cast<float>(L[i]) + mn - x[i];
    best_error += w[i] * (diff * diff);
  }
  uint8_t cand[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = Clamp(NearestInt(iscale * (x[i] - mn)), 0, nmax);
      cand[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * static_cast<float>(cand[i]) + this_min - x[i];
        err += w[i] * (diff * diff);
      }
      if (err < best_error) {
        std::memcpy(L, cand, static_cast<size_t>(n));
        best_error = err;
        scale = this_scale;
        mn = this_min;
      }
    }
  }
  *min_out = -mn;
  return scale;
}

// Symmetric codes L[i] = l + nmax, l in [-nmax, nmax - 1], weights x^2 (ggml's rmse_type 1):
// the grid through the extreme value, then 18 nearby grids; keeps the one maximising
// (sum w x l)^2 / sum w l^2, i.e. the least-squares error at the refit scale.
float MakeSymmetricQuants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float fnmax = static_cast<float>(nmax);
  float iscale = -fnmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float wi = x[i] * x[i];
    const float fl = static_cast<float>(l);
    sumlx += wi * x[i] * fl;
    suml2 += wi * fl * fl;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(fnmax + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
      const float wi = x[i] * x[i];
      const float fl = static_cast<float>(l);
      sumlx += wi * x[i] * fl;
      suml2 += wi * fl * fl;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        L[i] = static_cast<int8_t>(nmax + Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// The shared part of Q4_K and Q5_K: codes L[256] in [0, nmax] and the packed d, dmin, scales.
void QuantizeAffineSuperBlock(const float* x, int nmax, float rmin, float rdelta, int nstep,
                              uint16_t* d16, uint16_t* dmin16, uint8_t scales_out[12],
                              uint8_t L[256]) {
  float scales[8], mins[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = MakeAffineQuants(32, nmax, xs, weights, L + 32 * j, &mins[j], rmin, rdelta, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t* q = scales_out;
  std::memset(q, 0, 12);
  for (int j = 0; j < 8; ++j) {
    // ggml stores nearest_int's result in a uint8_t before capping at 63.
    uint8_t ls = static_cast<uint8_t>(NearestInt(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(NearestInt(inv_min * mins[j]));
    if (ls > 63) ls = 63;
    if (lm > 63) lm = 63;
    if (j < 4) {
      q[j] = ls;
      q[j + 4] = lm;
    } else {
      q[j + 4] = static_cast<uint8_t>((ls & 0x0F) | ((lm & 0x0F) << 4));
      q[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      q[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  *d16 = F32ToF16(max_scale / 63.f);
  *dmin16 = F32ToF16(max_min / 63.f);
  const float d_all = F16ToF32(*d16), dmin_all = F16ToF32(*dmin16);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    ScaleMinK4(j, q, &sc, &m);
    const float d = d_all * static_cast<float>(sc);
    if (d == 0.0f) continue;
    const float dm = dmin_all * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) {
      L[32 * j + l] = static_cast<uint8_t>(Clamp(NearestInt((x[32 * j + l] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace

void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[256];
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    QuantizeAffineSuperBlock(x, 15, -1.0f, 0.1f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        y[i].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
      }
    }
  }
}

void QuantizeRowQ5_K(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[256];
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    QuantizeAffineSuperBlock(x, 31, -0.5f, 0.1f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        y[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        y[i].qs[32 * c + l] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
      }
    }
  }
}

void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t nb) {
  int8_t L[256];
  float scales[16];
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    float max_scale = 0, max_abs_scale = 0;
    for (int s = 0; s < 16; ++s) {
      scales[s] = MakeSymmetricQuants(16, 32, x + 16 * s, L + 16 * s);
      if (std::fabs(scales[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = F32ToF16(1 / iscale);
    for (int s = 0; s < 16; ++s) {
      const int v = NearestInt(iscale * scales[s]);
      y[i].scales[s] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    const float d_all = F16ToF32(y[i].d);
    for (int s = 0; s < 16; ++s) {
      const float d = d_all * static_cast<float>(y[i].scales[s]);
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l) {
        L[16 * s + l] = static_cast<int8_t>(Clamp(NearestInt(x[16 * s + l] / d), -32, 31) + 32);
      }
    }
    for (int n = 0; n < 2; ++n) {
      const int8_t* Ln = L + 128 * n;
      uint8_t* ql = y[i].ql + 64 * n;
      uint8_t* qh = y[i].qh + 32 * n;
      for (int l = 0; l < 32; ++l) {
        const int a = Ln[l], b = Ln[l + 32], c = Ln[l + 64], e = Ln[l + 96];
        ql[l] = static_cast<uint8_t>((a & 0x0F) | ((c & 0x0F) << 4));
        ql[l + 32] = static_cast<uint8_t>((b & 0x0F) | ((e & 0x0F) << 4));
        qh[l] =
            static_cast<uint8_t>((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
      }
    }
  }
}

}  // namespace gannet::quant_internal
