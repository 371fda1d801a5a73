// DotPartner and the scalar reference dot products (ggml's vec_dot_*_q8_* in plain C++):
// integer sums per block, one f32 scale multiply per block (per sub-block scale inside the
// integer sum for the K-quants), f32 accumulation across blocks in order.
#include "base/status.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tensor/quant/quant_internal.h"

namespace gannet {
namespace {

using quant_internal::LoadU32;
using quant_internal::ScaleMinK4;

// Integer dot of one 32-value block whose codes are given by `code(j)` with 32 int8 activations.
template <typename CodeFn>
int DotBlock32(CodeFn code, const int8_t* q8) {
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += code(j) * q8[j];
  return sum;
}

float DotQ4_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* qs = w[i].qs;
    const int s = DotBlock32(
        [qs](int j) { return (j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4)) - 8; }, x[i].qs);
    sum += (F16ToF32(w[i].d) * F16ToF32(x[i].d)) * static_cast<float>(s);
  }
  return sum;
}

float DotQ4_1(const BlockQ4_1* w, const BlockQ8_1* x, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* qs = w[i].qs;
    const int s =
        DotBlock32([qs](int j) { return j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4); }, x[i].qs);
    // sum(d q + m) * (dy qy) = d dy sum(q qy) + m * (dy sum qy), and s = dy sum qy.
    sum += (F16ToF32(w[i].d) * F16ToF32(x[i].d)) * static_cast<float>(s) +
           F16ToF32(w[i].m) * F16ToF32(x[i].s);
  }
  return sum;
}

inline int Q5Code(const uint8_t* qs, uint32_t qh, int j) {
  const int nib = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
  return nib | static_cast<int>(((qh >> j) & 1u) << 4);
}

float DotQ5_0(const BlockQ5_0* w, const BlockQ8_0* x, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* qs = w[i].qs;
    const uint32_t qh = LoadU32(w[i].qh);
    const int s = DotBlock32([qs, qh](int j) { return Q5Code(qs, qh, j) - 16; }, x[i].qs);
    sum += (F16ToF32(w[i].d) * F16ToF32(x[i].d)) * static_cast<float>(s);
  }
  return sum;
}

float DotQ5_1(const BlockQ5_1* w, const BlockQ8_1* x, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* qs = w[i].qs;
    const uint32_t qh = LoadU32(w[i].qh);
    const int s = DotBlock32([qs, qh](int j) { return Q5Code(qs, qh, j); }, x[i].qs);
    sum += (F16ToF32(w[i].d) * F16ToF32(x[i].d)) * static_cast<float>(s) +
           F16ToF32(w[i].m) * F16ToF32(x[i].s);
  }
  return sum;
}

float DotQ8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const int8_t* qs = w[i].qs;
    const int s = DotBlock32([qs](int j) { return static_cast<int>(qs[j]); }, x[i].qs);
    sum += (F16ToF32(w[i].d) * F16ToF32(x[i].d)) * static_cast<float>(s);
  }
  return sum;
}

// Q4_K / Q5_K (qh == nullptr for Q4_K) with one Q8_K block:
// sum_j d sc_j sum_l q q8 - dmin m_j sum_l q8, the latter from the precomputed bsums.
float DotQ45KBlock(uint16_t d16, uint16_t dmin16, const uint8_t* scales, const uint8_t* qh,
                   const uint8_t* qs, const BlockQ8_K& x) {
  int isum = 0, msum = 0;
  for (int c = 0; c < 4; ++c) {
    uint8_t sc0, m0, sc1, m1;
    ScaleMinK4(2 * c, scales, &sc0, &m0);
    ScaleMinK4(2 * c + 1, scales, &sc1, &m1);
    int s0 = 0, s1 = 0;
    for (int l = 0; l < 32; ++l) {
      int lo = qs[32 * c + l] & 0x0F, hi = qs[32 * c + l] >> 4;
      if (qh != nullptr) {
        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
      }
      s0 += lo * x.qs[64 * c + l];
      s1 += hi * x.qs[64 * c + 32 + l];
    }
    isum += sc0 * s0 + sc1 * s1;
    msum +=
        m0 * (x.bsums[4 * c] + x.bsums[4 * c + 1]) + m1 * (x.bsums[4 * c + 2] + x.bsums[4 * c + 3]);
  }
  return (F16ToF32(d16) * x.d) * static_cast<float>(isum) -
         (F16ToF32(dmin16) * x.d) * static_cast<float>(msum);
}

float DotQ6_K(const BlockQ6_K* w, const BlockQ8_K* x, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int isum = 0;
    for (int n = 0; n < 2; ++n) {
      const uint8_t* ql = w[i].ql + 64 * n;
      const uint8_t* qh = w[i].qh + 32 * n;
      const int8_t* q8 = x[i].qs + 128 * n;
      const int8_t* sc = w[i].scales + 8 * n;
      int s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int l = 0; l < 32; ++l) {
        const int h = qh[l];
        const int q0 = ((ql[l] & 0x0F) | ((h & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        const int g = l / 16;
        s[g] += q0 * q8[l];
        s[2 + g] += q1 * q8[32 + l];
        s[4 + g] += q2 * q8[64 + l];
        s[6 + g] += q3 * q8[96 + l];
      }
      for (int k = 0; k < 8; ++k) isum += sc[k] * s[k];
    }
    sum += (F16ToF32(w[i].d) * x[i].d) * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

DType DotPartner(DType weight_type) {
  switch (weight_type) {
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
      return DType::kQ8_0;
    case DType::kQ4_1:
    case DType::kQ5_1:
      return DType::kQ8_1;
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return DType::kQ8_K;
    default:
      return DType::kF32;
  }
}

float VecDotRef(DType wtype, const void* w, const void* x, int64_t n) {
  const int64_t bs = Traits(wtype).block_size;
  GANNET_CHECK(n % bs == 0);
  const int64_t nb = n / bs;
  const auto* xk = static_cast<const BlockQ8_K*>(x);
  switch (wtype) {
    case DType::kF32: {
      const auto* a = static_cast<const float*>(w);
      const auto* b = static_cast<const float*>(x);
      float sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
      return sum;
    }
    case DType::kF16:
    case DType::kBF16: {
      const auto* a = static_cast<const uint16_t*>(w);
      const auto* b = static_cast<const float*>(x);
      const bool f16 = wtype == DType::kF16;
      float sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += (f16 ? F16ToF32(a[i]) : BF16ToF32(a[i])) * b[i];
      return sum;
    }
    case DType::kQ4_0:
      return DotQ4_0(static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
    case DType::kQ4_1:
      return DotQ4_1(static_cast<const BlockQ4_1*>(w), static_cast<const BlockQ8_1*>(x), nb);
    case DType::kQ5_0:
      return DotQ5_0(static_cast<const BlockQ5_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
    case DType::kQ5_1:
      return DotQ5_1(static_cast<const BlockQ5_1*>(w), static_cast<const BlockQ8_1*>(x), nb);
    case DType::kQ8_0:
      return DotQ8_0(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
    case DType::kQ4_K: {
      const auto* b = static_cast<const BlockQ4_K*>(w);
      float sum = 0;
      for (int64_t i = 0; i < nb; ++i)
        sum += DotQ45KBlock(b[i].d, b[i].dmin, b[i].scales, nullptr, b[i].qs, xk[i]);
      return sum;
    }
    case DType::kQ5_K: {
      const auto* b = static_cast<const BlockQ5_K*>(w);
      float sum = 0;
      for (int64_t i = 0; i < nb; ++i)
        sum += DotQ45KBlock(b[i].d, b[i].dmin, b[i].scales, b[i].qh, b[i].qs, xk[i]);
      return sum;
    }
    case DType::kQ6_K:
      return DotQ6_K(static_cast<const BlockQ6_K*>(w), xk, nb);
    default:
      break;
  }
  GANNET_CHECK(false && "VecDotRef: weight type has no dot product");
  return 0.0f;
}

}  // namespace gannet
