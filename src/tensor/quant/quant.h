// Scalar reference pack/unpack of ggml's block-quantized layouts: the ground truth every kernel
// is tested against. Dequantization is bit-exact with the `gguf` Python package's numpy code.
// All functions: n is the number of values, a multiple of the type's block size (REQUIRES).
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace gannet {

// Block structs (packed exactly as ggml-common.h lays them out; f16 fields are raw bits).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[32];
};  // s = d * sum(qs)
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36 &&
              sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 &&
              sizeof(BlockQ8_K) == 292);

// Dequantizes n values of any loadable type (F32, F16, BF16 and the block types) to f32.
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);

// Activation quantizers, as ggml's quantize_row_*_ref (the dot partners of the weight types).
void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n);
void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n);
void QuantizeRowQ8_K(const float* x, BlockQ8_K* y, int64_t n);

// Weight quantizers (reference, round-to-nearest with ggml's scale search for K-quants), used by
// tests and by `gannet quantize`. Supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, F16,
// BF16, F32. Returns false for a type it cannot produce.
bool QuantizeRow(DType type, const float* x, void* dst, int64_t n);

// The activation type a weight type's dot product takes (Q8_0, Q8_1, Q8_K; F32 for float types).
DType DotPartner(DType weight_type);

// Reference dot product of one weight row (type `wtype`) with one activation row already
// quantized to DotPartner(wtype) (or f32 for float weights), n values. Integer arithmetic per
// block as ggml's vec_dot_*; the result is what every fast kernel must reproduce (up to f32
// summation order).
float VecDotRef(DType wtype, const void* w, const void* x, int64_t n);

}  // namespace gannet
