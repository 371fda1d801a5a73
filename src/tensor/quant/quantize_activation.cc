// Activation quantizers (the dot partners), as ggml's quantize_row_q8_{0,1,K}_ref.
//
// Q8_0 / Q8_1 round half away from zero (roundf); Q8_K rounds half to even (nearest_int).
// Fast kernels must produce exactly these bytes.
#include <cmath>
#include <cstring>

#include "base/status.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tensor/quant/quant_internal.h"

namespace gannet {

void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n) {
  GANNET_CHECK(n % 32 == 0);
  for (int64_t i = 0; i < n / 32; ++i, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = F32ToF16(d);
    for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n) {
  GANNET_CHECK(n % 32 == 0);
  for (int64_t i = 0; i < n / 32; ++i, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = F32ToF16(d);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
      sum += y[i].qs[j];
    }
    y[i].s = F32ToF16(static_cast<float>(sum) * d);
  }
}

void QuantizeRowQ8_K(const float* x, BlockQ8_K* y, int64_t n) {
  GANNET_CHECK(n % 256 == 0);
  for (int64_t i = 0; i < n / 256; ++i, x += 256) {
    // The signed value of largest magnitude (the first one on ties) sets the scale, so the
    // extreme maps to exactly -127 and the sign of d carries the sign.
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < 256; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < 256; ++j) {
      const int v = quant_internal::NearestInt(iscale * x[j]);
      y[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * g + l];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

}  // namespace gannet
