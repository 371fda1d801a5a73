// K-quant weight quantizers (internal to tensor/quant; QuantizeRow is the public entry).
// nb is the number of 256-value super-blocks.
#pragma once

#include <cstdint>

#include "tensor/quant/quant.h"

namespace gannet::quant_internal {

void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t nb);
void QuantizeRowQ5_K(const float* x, BlockQ5_K* y, int64_t nb);
void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t nb);

}  // namespace gannet::quant_internal
