// The scalar target of MatMul: tensor/quant's VecDotRef per (row, token), reference activation
// quantizers. Slow and obviously right; the conformance test measures every ISA against it.
#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::matmul_ref {
namespace {

template <DType kType>
void Tile(const MatMulTile& t, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = t.w + static_cast<size_t>(r) * t.w_row_bytes;
    for (int j = 0; j < t.nt; ++j) {
      t.y[j * t.y_stride + r] = VecDotRef(kType, w, t.xq + j * t.xq_stride, t.n_in);
    }
  }
}

void Q8_0(const float* x, void* dst, int64_t n) {
  QuantizeRowQ8_0(x, static_cast<BlockQ8_0*>(dst), n);
}
void Q8_1(const float* x, void* dst, int64_t n) {
  QuantizeRowQ8_1(x, static_cast<BlockQ8_1*>(dst), n);
}
void Q8_K(const float* x, void* dst, int64_t n) {
  QuantizeRowQ8_K(x, static_cast<BlockQ8_K*>(dst), n);
}

}  // namespace

MatMulTileFn TileKernel(DType wtype) {
  switch (wtype) {
    case DType::kF32:
      return &Tile<DType::kF32>;
    case DType::kF16:
      return &Tile<DType::kF16>;
    case DType::kBF16:
      return &Tile<DType::kBF16>;
    case DType::kQ4_0:
      return &Tile<DType::kQ4_0>;
    case DType::kQ4_1:
      return &Tile<DType::kQ4_1>;
    case DType::kQ5_0:
      return &Tile<DType::kQ5_0>;
    case DType::kQ5_1:
      return &Tile<DType::kQ5_1>;
    case DType::kQ8_0:
      return &Tile<DType::kQ8_0>;
    case DType::kQ4_K:
      return &Tile<DType::kQ4_K>;
    case DType::kQ5_K:
      return &Tile<DType::kQ5_K>;
    case DType::kQ6_K:
      return &Tile<DType::kQ6_K>;
    default:
      return nullptr;
  }
}

QuantizeActFn Quantizer(DType partner) {
  switch (partner) {
    case DType::kQ8_0:
      return &Q8_0;
    case DType::kQ8_1:
      return &Q8_1;
    case DType::kQ8_K:
      return &Q8_K;
    default:
      return nullptr;
  }
}

}  // namespace gannet::cpu::matmul_ref
