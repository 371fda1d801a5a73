// AVX2 + FMA versions of the row-wise and element-wise ops (dispatch in ops.cc).
//
// Compiled with -mavx2 -mfma -mf16c: everything used here is local (internal linkage) or a
// compiler builtin, never an inline function from a shared header (see ops_internal.h).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_internal.h"

namespace gannet::cpu::avx2 {
namespace {

inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// act(g) = g * sigmoid(z): SiLU has z = g; the tanh GELU has z = 2 sqrt(2/pi) (g + 0.044715 g^3),
// since 0.5 (1 + tanh(y)) = 1 / (1 + e^-2y). This form has no cancellation for negative g.
template <GluAct kAct>
inline __m256 Act(__m256 g) {
  __m256 z = g;
  if constexpr (kAct == GluAct::kGeluTanh) {
    const __m256 g3 = _mm256_mul_ps(_mm256_mul_ps(g, g), g);
    z = _mm256_mul_ps(_mm256_set1_ps(2.0f * 0.7978845608028654f),
                      _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), g3, g));
  }
  const __m256 e = Exp(_mm256_sub_ps(_mm256_setzero_ps(), z));
  return _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

template <GluAct kAct>
void GluImpl(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 r = _mm256_mul_ps(Act<kAct>(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i));
    _mm256_storeu_ps(out + i, r);
  }
  if (i < n) {  // tail through a padded vector, so every element takes the same arithmetic
    alignas(32) float g[8] = {}, u[8] = {}, r[8];
    for (int64_t k = 0; k < n - i; ++k) {
      g[k] = gate[i + k];
      u[k] = up[i + k];
    }
    _mm256_store_ps(r, _mm256_mul_ps(Act<kAct>(_mm256_load_ps(g)), _mm256_load_ps(u)));
    for (int64_t k = 0; k < n - i; ++k) out[i + k] = r[k];
  }
}

}  // namespace

void RmsNorm(const float* x, int64_t x_stride, const float* w, float eps, int64_t n_rows,
             int64_t n_cols, float* out, int64_t out_stride) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * x_stride;
    float* o = out + r * out_stride;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n_cols; i += 32) {
      for (int u = 0; u < 4; ++u) {
        const __m256 v = _mm256_loadu_ps(xr + i + 8 * u);
        acc[u] = _mm256_fmadd_ps(v, v, acc[u]);
      }
    }
    for (; i + 8 <= n_cols; i += 8) {
      const __m256 v = _mm256_loadu_ps(xr + i);
      acc[0] = _mm256_fmadd_ps(v, v, acc[0]);
    }
    float sum = HSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n_cols; ++i) sum += xr[i] * xr[i];
    const float mean = sum / static_cast<float>(n_cols);
    const float inv = 1.0f / _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(mean + eps)));
    const __m256 iv = _mm256_set1_ps(inv);
    i = 0;
    if (w) {
      for (; i + 8 <= n_cols; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xr + i), iv);
        _mm256_storeu_ps(o + i, _mm256_mul_ps(v, _mm256_loadu_ps(w + i)));
      }
      for (; i < n_cols; ++i) o[i] = xr[i] * inv * w[i];
    } else {
      for (; i + 8 <= n_cols; i += 8)
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(xr + i), iv));
      for (; i < n_cols; ++i) o[i] = xr[i] * inv;
    }
  }
}

void Glu(GluAct act, const float* gate, const float* up, int64_t n, float* out) {
  if (act == GluAct::kGeluTanh) {
    GluImpl<GluAct::kGeluTanh>(gate, up, n, out);
  } else {
    GluImpl<GluAct::kSilu>(gate, up, n, out);
  }
}

void Add(const float* a, const float* b, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  }
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

namespace {

// 8 floats at src as f16 into dst, round to nearest even, a NaN as F32ToF16 makes it: its sign and
// 0x7E00 (vcvtps2ph would keep the high bits of its payload).
inline void ToHalf8(const float* src, uint16_t* dst) {
  const __m256 x = _mm256_loadu_ps(src);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst),
                   _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const int nan = _mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  for (int j = 0; nan != 0 && j < 8; ++j) {
    if ((nan >> j) & 1) {
      uint32_t bits;
      std::memcpy(&bits, src + j, sizeof(bits));
      dst[j] = static_cast<uint16_t>(((bits >> 16) & 0x8000u) | 0x7E00u);
    }
  }
}

// dst[0, n) = src[0, n) as f16 (ToHalf8's rounding); a tail of fewer than 8 goes through a
// zero-padded copy.
void ToHalf(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) ToHalf8(src + i, dst + i);
  if (i < n) {
    float in[8] = {};
    uint16_t out[8];
    std::memcpy(in, src + i, static_cast<size_t>(n - i) * sizeof(float));
    ToHalf8(in, out);
    std::memcpy(dst + i, out, static_cast<size_t>(n - i) * sizeof(uint16_t));
  }
}

}  // namespace

void StoreKv(const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t n_tokens,
             int64_t row_elems, const int32_t* pos, uint16_t* const* k_blocks,
             uint16_t* const* v_blocks, int64_t block_size) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t p = pos[t];
    const int64_t off = (p % block_size) * row_elems;
    ToHalf(k + t * k_stride, row_elems, k_blocks[p / block_size] + off);
    ToHalf(v + t * v_stride, row_elems, v_blocks[p / block_size] + off);
  }
}

}  // namespace gannet::cpu::avx2
