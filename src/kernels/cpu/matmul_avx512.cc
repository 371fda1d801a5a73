// The AVX-512 (F/BW/VL) + VNNI matmul target's dispatch: which weight types have a kernel of
// their own here. Every other type runs the AVX2 kernel inside this target (matmul.cc).
#include "kernels/cpu/matmul_internal.h"

namespace gannet::cpu::avx512 {

MatMulTileFn MatMulTileKernel(DType wtype) { return MatMulTileKernelK(wtype); }

int MatMulTileTokens(DType /*wtype*/) { return kMatMulTileTokens; }

}  // namespace gannet::cpu::avx512
