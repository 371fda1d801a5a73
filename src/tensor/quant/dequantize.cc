// DequantizeRow: block layouts -> f32, bit-exact with the gguf package's numpy code.
//
// Bit-exactness needs the same f32 operations in the same order as numpy: every product is
// rounded on its own (no fused multiply-add; this file is compiled for baseline x86-64), and
// the K-quants first form d * scale and dmin * min, then d_sc * q - dm_m, as gguf and ggml do.
#include <cstring>

#include "base/status.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tensor/quant/quant_internal.h"

namespace gannet {
namespace {

using quant_internal::LoadU32;
using quant_internal::ScaleMinK4;

void DequantQ4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = F16ToF32(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((b[i].qs[j] & 0x0F) - 8);
      y[j + 16] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

void DequantQ4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = F16ToF32(b[i].d);
    const float m = F16ToF32(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(b[i].qs[j] & 0x0F) + m;
      y[j + 16] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
    }
  }
}

void DequantQ5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = F16ToF32(b[i].d);
    const uint32_t qh = LoadU32(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int lo = (b[i].qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

void DequantQ5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = F16ToF32(b[i].d);
    const float m = F16ToF32(b[i].m);
    const uint32_t qh = LoadU32(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int lo = (b[i].qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

void DequantQ8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = F16ToF32(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void DequantQ8_1(const BlockQ8_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = F16ToF32(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

// Q4_K and Q5_K share the scale layout; qh == nullptr for Q4_K.
void DequantQ45K(const uint16_t d16, const uint16_t dmin16, const uint8_t* scales,
                 const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = F16ToF32(d16);
  const float dmin = F16ToF32(dmin16);
  for (int c = 0; c < 4; ++c) {  // 64 values per chunk: sub-blocks 2c (low nibbles), 2c+1 (high)
    uint8_t sc0, m0, sc1, m1;
    ScaleMinK4(2 * c, scales, &sc0, &m0);
    ScaleMinK4(2 * c + 1, scales, &sc1, &m1);
    const float d0 = d * static_cast<float>(sc0), dm0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), dm1 = dmin * static_cast<float>(m1);
    for (int l = 0; l < 32; ++l) {
      int lo = qs[32 * c + l] & 0x0F;
      int hi = qs[32 * c + l] >> 4;
      if (qh != nullptr) {
        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
      }
      y[64 * c + l] = d0 * static_cast<float>(lo) - dm0;
      y[64 * c + 32 + l] = d1 * static_cast<float>(hi) - dm1;
    }
  }
}

void DequantQ6_K(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = F16ToF32(b[i].d);
    float ds[16];
    for (int s = 0; s < 16; ++s) ds[s] = d * static_cast<float>(b[i].scales[s]);
    for (int n = 0; n < 2; ++n) {
      const uint8_t* ql = b[i].ql + 64 * n;
      const uint8_t* qh = b[i].qh + 32 * n;
      float* yy = y + 128 * n;
      const float* dd = ds + 8 * n;
      for (int l = 0; l < 32; ++l) {
        const int h = qh[l];
        const int q0 = ((ql[l] & 0x0F) | ((h & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        yy[l] = dd[l / 16] * static_cast<float>(q0);
        yy[32 + l] = dd[2 + l / 16] * static_cast<float>(q1);
        yy[64 + l] = dd[4 + l / 16] * static_cast<float>(q2);
        yy[96 + l] = dd[6 + l / 16] * static_cast<float>(q3);
      }
    }
  }
}

void DequantQ8_K(const BlockQ8_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    for (int j = 0; j < 256; ++j) y[j] = b[i].d * static_cast<float>(b[i].qs[j]);
  }
}

}  // namespace

void DequantizeRow(DType type, const void* src, float* dst, int64_t n) {
  const int64_t bs = Traits(type).block_size;
  GANNET_CHECK(n % bs == 0);
  const int64_t nb = n / bs;
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(h[i]);
      return;
    }
    case DType::kQ4_0:
      return DequantQ4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case DType::kQ4_1:
      return DequantQ4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case DType::kQ5_0:
      return DequantQ5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
    case DType::kQ5_1:
      return DequantQ5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
    case DType::kQ8_0:
      return DequantQ8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case DType::kQ8_1:
      return DequantQ8_1(static_cast<const BlockQ8_1*>(src), dst, nb);
    case DType::kQ4_K: {
      const auto* b = static_cast<const BlockQ4_K*>(src);
      for (int64_t i = 0; i < nb; ++i) {
        DequantQ45K(b[i].d, b[i].dmin, b[i].scales, nullptr, b[i].qs, dst + 256 * i);
      }
      return;
    }
    case DType::kQ5_K: {
      const auto* b = static_cast<const BlockQ5_K*>(src);
      for (int64_t i = 0; i < nb; ++i) {
        DequantQ45K(b[i].d, b[i].dmin, b[i].scales, b[i].qh, b[i].qs, dst + 256 * i);
      }
      return;
    }
    case DType::kQ6_K:
      return DequantQ6_K(static_cast<const BlockQ6_K*>(src), dst, nb);
    case DType::kQ8_K:
      return DequantQ8_K(static_cast<const BlockQ8_K*>(src), dst, nb);
    case DType::kQ2_K:
    case DType::kQ3_K:
      break;
  }
  GANNET_CHECK(false && "DequantizeRow: type has no dequantizer");
}

}  // namespace gannet
