// Weight quantizers for the 32-value block types and the float types, plus the QuantizeRow
// dispatcher. Each follows ggml's quantize_row_*_ref operation by operation, so the bytes equal
// llama.cpp's and the gguf package's (checked by tests/unit/tensor/quant_test.cc).
#include <cmath>
#include <cstring>

#include "base/status.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tensor/quant/quant_kquant.h"

namespace gannet {
namespace {

// The signed value of largest magnitude in x[0..n) (the first one on ties).
float SignedAbsMax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void MinMax(const float* x, int n, float* mn, float* mx) {
  float lo = x[0], hi = x[0];
  for (int j = 1; j < n; ++j) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  *mn = lo;
  *mx = hi;
}

// Symmetric 4/5-bit codes: d = max / -2^(bits-1) so the extreme value maps to code 0, and
// q = trunc(x / d + 2^(bits-1) + 0.5) (round half up), capped at 2^bits - 1.
void QuantizeSymmetric(const float* x, int bits, uint16_t* d16, uint8_t q[32]) {
  const float half = static_cast<float>(1 << (bits - 1));
  const float d = SignedAbsMax(x, 32) / -half;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const int qmax = (1 << bits) - 1;
  for (int j = 0; j < 32; ++j) {
    const int v = static_cast<int>(x[j] * id + (half + 0.5f));
    q[j] = static_cast<uint8_t>(v < 0 ? 0 : v < qmax ? v : qmax);
  }
  *d16 = F32ToF16(d);
}

// Asymmetric codes: d = (max - min) / (2^bits - 1), q = trunc((x - min) / d + 0.5).
void QuantizeAffine(const float* x, int bits, uint16_t* d16, uint16_t* m16, uint8_t q[32]) {
  float mn, mx;
  MinMax(x, 32, &mn, &mx);
  const int qmax = (1 << bits) - 1;
  const float d = (mx - mn) / static_cast<float>(qmax);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; ++j) {
    const int v = static_cast<int>((x[j] - mn) * id + 0.5f);
    q[j] = static_cast<uint8_t>(v < 0 ? 0 : v < qmax ? v : qmax);
  }
  *d16 = F32ToF16(d);
  *m16 = F32ToF16(mn);
}

void PackNibbles(const uint8_t q[32], uint8_t qs[16]) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | (q[j + 16] << 4));
}

void PackHighBits(const uint8_t q[32], uint8_t qh[4]) {
  uint32_t h = 0;
  for (int j = 0; j < 32; ++j) h |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(h >> (8 * k));
}

}  // namespace

bool QuantizeRow(DType type, const float* x, void* dst, int64_t n) {
  const DTypeTraits* tr = FindDType(static_cast<int32_t>(type));
  if (tr == nullptr || n % tr->block_size != 0) return false;
  const int64_t nb = n / tr->block_size;
  uint8_t q[32];
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
      return true;
    case DType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToF16(x[i]);
      return true;
    }
    case DType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToBF16(x[i]);
      return true;
    }
    case DType::kQ4_0: {
      auto* y = static_cast<BlockQ4_0*>(dst);
      for (int64_t i = 0; i < nb; ++i) {
        QuantizeSymmetric(x + 32 * i, 4, &y[i].d, q);
        PackNibbles(q, y[i].qs);
      }
      return true;
    }
    case DType::kQ4_1: {
      auto* y = static_cast<BlockQ4_1*>(dst);
      for (int64_t i = 0; i < nb; ++i) {
        QuantizeAffine(x + 32 * i, 4, &y[i].d, &y[i].m, q);
        PackNibbles(q, y[i].qs);
      }
      return true;
    }
    case DType::kQ5_0: {
      auto* y = static_cast<BlockQ5_0*>(dst);
      for (int64_t i = 0; i < nb; ++i) {
        QuantizeSymmetric(x + 32 * i, 5, &y[i].d, q);
        PackNibbles(q, y[i].qs);
        PackHighBits(q, y[i].qh);
      }
      return true;
    }
    case DType::kQ5_1: {
      auto* y = static_cast<BlockQ5_1*>(dst);
      for (int64_t i = 0; i < nb; ++i) {
        QuantizeAffine(x + 32 * i, 5, &y[i].d, &y[i].m, q);
        PackNibbles(q, y[i].qs);
        PackHighBits(q, y[i].qh);
      }
      return true;
    }
    case DType::kQ8_0:
      QuantizeRowQ8_0(x, static_cast<BlockQ8_0*>(dst), n);
      return true;
    case DType::kQ4_K:
      quant_internal::QuantizeRowQ4_K(x, static_cast<BlockQ4_K*>(dst), nb);
      return true;
    case DType::kQ5_K:
      quant_internal::QuantizeRowQ5_K(x, static_cast<BlockQ5_K*>(dst), nb);
      return true;
    case DType::kQ6_K:
      quant_internal::QuantizeRowQ6_K(x, static_cast<BlockQ6_K*>(dst), nb);
      return true;
    default:
      return false;
  }
}

}  // namespace gannet
