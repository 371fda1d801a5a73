// Helpers shared by the scalar quantization sources of tensor/quant (not a public header).
// Compiled only into the baseline (non-SIMD) tensor library.
#pragma once

#include <cstdint>
#include <cstring>

namespace gannet::quant_internal {

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the rounded integer in
// the low mantissa bits. This is the rounding ggml's nearest_int uses (and that _mm256_cvtps_epi32
// uses under the default MXCSR), so the K-quant and Q8_K codes match llama.cpp's exactly.
inline int NearestInt(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007FFFFF) - 0x00400000;
}

// Decodes the 6-bit scale and min of sub-block j (0..7) from a K-quant's packed scales[12].
inline void ScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

inline uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace gannet::quant_internal
