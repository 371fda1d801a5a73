// AVX2 activation quantizers for MatMul. They must write exactly the bytes of tensor/quant's
// reference quantizers: the same scalar scale arithmetic, the same per-element products, and
// the same rounding (half away from zero for Q8_0/Q8_1 as roundf; half to even for Q8_K, which
// cvtps_epi32 does under the default MXCSR rounding mode).
#include <cstring>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx2 {
namespace {

static inline __m256 AbsPs(__m256 v) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
}

static inline float HorizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// roundf: truncate, then step away from zero when the dropped fraction is >= 0.5 (v - trunc(v)
// is exact for every float).
static inline __m256i RoundHalfAway(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = AbsPs(_mm256_sub_ps(v, t));
  const __m256 sign_one =
      _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
  const __m256 step =
      _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), sign_one);
  return _mm256_cvttps_epi32(_mm256_add_ps(t, step));
}

// Four vectors of 8 int32 (each in int8 range) -> 32 int8 in order.
static inline __m256i PackI32ToI8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i abcd = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// One block of 32: codes into qs, the f32 scale returned, the code sum in *sum.
static inline float QuantizeBlock32(const float* x, int8_t* qs, int* sum) {
  __m256 v[4];
  for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
  const __m256 amax_v = _mm256_max_ps(_mm256_max_ps(AbsPs(v[0]), AbsPs(v[1])),
                                      _mm256_max_ps(AbsPs(v[2]), AbsPs(v[3])));
  const float amax = HorizontalMax(amax_v);
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  for (int k = 0; k < 4; ++k) q[k] = RoundHalfAway(_mm256_mul_ps(v[k], idv));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), PackI32ToI8(q[0], q[1], q[2], q[3]));
  *sum = HorizontalSumI32(
      _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  return d;
}

void QuantizeQ8_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / 32; ++i) {
    int sum;
    const float d = QuantizeBlock32(x + 32 * i, y[i].qs, &sum);
    y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
  }
}

void QuantizeQ8_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / 32; ++i) {
    int sum;
    const float d = QuantizeBlock32(x + 32 * i, y[i].qs, &sum);
    y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    y[i].s = _cvtss_sh(static_cast<float>(sum) * d, _MM_FROUND_TO_NEAREST_INT);
  }
}

void QuantizeQ8_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / 256; ++i, x += 256) {
    __m256 amax_v = _mm256_setzero_ps();
    for (int k = 0; k < 32; ++k) amax_v = _mm256_max_ps(amax_v, AbsPs(_mm256_loadu_ps(x + 8 * k)));
    const float amax = HorizontalMax(amax_v);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    // The first element of largest magnitude gives the signed max (as the scalar scan does).
    float max = 0.0f;
    const __m256 amax_b = _mm256_set1_ps(amax);
    for (int k = 0; k < 32; ++k) {
      const int mask =
          _mm256_movemask_ps(_mm256_cmp_ps(AbsPs(_mm256_loadu_ps(x + 8 * k)), amax_b, _CMP_EQ_OQ));
      if (mask != 0) {
        max = x[8 * k + __builtin_ctz(static_cast<unsigned>(mask))];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 is = _mm256_set1_ps(iscale);
    const __m256i cap = _mm256_set1_epi32(127);
    for (int g = 0; g < 8; ++g) {
      __m256i q[4];
      for (int k = 0; k < 4; ++k) {
        q[k] = _mm256_min_epi32(
            _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), is)), cap);
      }
      // bsums: 16-value sums, two per group of 32.
      y[i].bsums[2 * g] = static_cast<int16_t>(HorizontalSumI32(_mm256_add_epi32(q[0], q[1])));
      y[i].bsums[2 * g + 1] = static_cast<int16_t>(HorizontalSumI32(_mm256_add_epi32(q[2], q[3])));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + 32 * g),
                          PackI32ToI8(q[0], q[1], q[2], q[3]));
    }
    y[i].d = 1.0f / iscale;
  }
}

}  // namespace

QuantizeActFn MatMulQuantizer(DType partner) {
  switch (partner) {
    case DType::kQ8_0:
      return &QuantizeQ8_0;
    case DType::kQ8_1:
      return &QuantizeQ8_1;
    case DType::kQ8_K:
      return &QuantizeQ8_K;
    default:
      return nullptr;
  }
}

}  // namespace gannet::cpu::avx2
