// Internal to kernels/cpu: the per-ISA pieces behind MatMul (matmul.cc). Plain declarations
// only, so files compiled for a wider ISA (*_avx2.cc, *_avx512.cc) share no inline code with
// baseline files.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace gannet::cpu {

// Tokens per tile: one weight block is unpacked once and multiplied with up to this many
// activation rows while it sits in registers.
inline constexpr int kMatMulTileTokens = 4;
// Tokens per tile for the kernels that unpack each weight block once for all of a tile's tokens
// (avx2::MatMulTileTokens says which),
// for all of a tile's tokens.
inline constexpr int kMatMulWideTileTokens = 16;
// Rows per group of an interleaved (repacked) weight: super-block b of row r sits at slot
// b * kRepackRows + r % kRepackRows of group r / kRepackRows (repack.h).
inline constexpr int kRepackRows = 4;
// Rows per group of an interleaved Q8_0, Q4_0 or Q5_0 weight (their 16-row layouts, repack.h):
// one 512-bit vector holds 4 codes of each of 16 rows.
inline constexpr int kRepackRows16 = 16;

// One tile of y = W x: y[t * y_stride + o] for t < nt and o in [r0, r1).
// w: n_out weight rows of w_row_bytes. xq: token t's activation row at xq + t * xq_stride
// (bytes), in DotPartner(wtype) blocks, or f32 when the partner is F32.
// REQUIRES: 1 <= nt <= kMatMulTileTokens; n_in a multiple of the weight block size.
struct MatMulTile {
  const uint8_t* w = nullptr;
  size_t w_row_bytes = 0;
  const uint8_t* xq = nullptr;
  size_t xq_stride = 0;
  int nt = 0;
  int64_t n_in = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  // Token t's activation table at xtab + t * xtab_stride when the kernel reads one (16-row
  // interleaved Q8_0 / Q4_0 / Q5_0: avx512::Q8_0ActTableBytes), filled once per MatMul; null: the
  // kernel fills its own.
  const uint8_t* xtab = nullptr;
  size_t xtab_stride = 0;
  // The weights from row r0 on start a thread's stream (its first chunk of a matrix, or one that
  // does not follow the chunk it ran before): a kernel may request their first bytes up front.
  bool stream_start = false;
};
using MatMulTileFn = void (*)(const MatMulTile& tile, int64_t r0, int64_t r1);
// Quantizes n activations to a dot-partner type (n a multiple of its block size).
using QuantizeActFn = void (*)(const float* x, void* dst, int64_t n);

namespace matmul_ref {
// Scalar twin: VecDotRef per (row, token). Always available for every loadable type.
MatMulTileFn TileKernel(DType wtype);
// The tensor/quant reference quantizer for a partner type (Q8_0, Q8_1, Q8_K).
QuantizeActFn Quantizer(DType partner);
}  // namespace matmul_ref

namespace avx2 {
// REQUIRES (all): the CPU has AVX2, FMA and F16C. nullptr where there is no AVX2 kernel.
MatMulTileFn MatMulTileKernel(DType wtype);
// The most tokens MatMulTileKernel(wtype) takes per tile: kMatMulWideTileTokens or
// kMatMulTileTokens.
int MatMulTileTokens(DType wtype);
// The widest row, in 32-value blocks, that the 4-row kernel of a 32-value block type takes
// (its per-pass activation table must hold one token); wider rows take the 1-row tiles, whose
// f32 sums run in another order. Kernels of other targets that promise these kernels' bits
// follow the same split. 0 for other types.
int64_t RowBlockMaxBlocks(DType wtype);
// Produces exactly the bytes of the reference quantizers (assumes the default MXCSR rounding).
QuantizeActFn MatMulQuantizer(DType partner);
// The K-quant part of MatMulTileKernel (matmul_kquant_avx2.cc): Q4_K, Q5_K, Q6_K.
MatMulTileFn MatMulTileKernelK(DType wtype);
// The same kernels (same bits) on weights interleaved in groups of kRepackRows rows (RepackRows,
// repack.h): Q4_K, Q5_K, Q6_K; nullptr for other types. w points at the first group, w_row_bytes
// is still one row's bytes.
MatMulTileFn MatMulTileKernelKInterleaved(DType wtype);
}  // namespace avx2

namespace avx512 {
// REQUIRES (all): AvailableIsas reports Isa::kAvx512 (AVX-512 F/BW/VL/DQ and VNNI, plus the AVX2
// target's features). nullptr where this target has no kernel of its own: the caller then runs
// the AVX2 kernel. Results have the bits of the AVX2 kernels (same exact integer sums, same f32
// recipe).
MatMulTileFn MatMulTileKernel(DType wtype);
// The most tokens MatMulTileKernel(wtype) takes per tile.
int MatMulTileTokens(DType wtype);
// The 32-value row-block types with unsigned codes (matmul_q4_avx512.cc): Q4_0, Q4_1, Q5_0,
// Q5_1, up to kMatMulWideTileTokens tokens per tile; nullptr for other types.
MatMulTileFn MatMulTileKernel32(DType wtype);
// The tiles of those types with the tokens in the lanes (matmul_q4_wide_avx512.cc), which
// MatMulTileKernel32 runs for the first Tile32WideTokens(tile) tokens of a tile (0: none; the rest
// take the 8-row kernel): Q4_0, Q4_1, Q5_0, Q5_1; nullptr for other types. Same bits. They read
// their tokens' activations transposed (token t in lane t): MatMul fills that table once per call
// for every 16-token tile (MatMulTile::xtab, the tile's table at its first token: xtab + t0 *
// Q32ActTableBytes(n_in), t0 a multiple of 16); a tile without one (xtab null) transposes its own,
// up to 2048 inputs.
MatMulTileFn MatMulTileKernel32Wide(DType wtype);
int Tile32WideTokens(const MatMulTile& tile);
// The fewest tokens those tiles take (MatMul fills their table only for calls of as many).
inline constexpr int kQ32WideMinTokens = 12;
// Bytes per token of that table (its Q8_0 / Q8_1 codes, per-half sums and scales).
size_t Q32ActTableBytes(int64_t n_in);
// dst (16 x Q32ActTableBytes) = the table of the nt <= 16 tokens whose partner rows (Q8_0 or
// Q8_1) of n_in values are at xq + j * xq_stride (the lanes past nt repeat token 0).
void FillQ32ActTable(DType partner, const uint8_t* xq, size_t xq_stride, int nt, int64_t n_in,
                     uint8_t* dst);
// The K-quant part (matmul_kquant_avx512.cc): Q4_K, Q5_K, Q6_K, up to kMatMulKQuantTileTokens
// tokens per tile.
inline constexpr int kMatMulKQuantTileTokens = kMatMulWideTileTokens;
MatMulTileFn MatMulTileKernelK(DType wtype);
// The K-quant tiles with the tokens in the lanes (matmul_kquant_wide_avx512.cc), which
// MatMulTileKernelK and MatMulTileKernelKInterleaved run for 9..16 tokens: Q4_K, Q5_K, Q6_K on
// the file layout or (interleaved) the kRepackRows groups; nullptr for other types. Same bits.
MatMulTileFn MatMulTileKernelKWide(DType wtype, bool interleaved);
// Those tiles read their tokens' activations transposed (token t in lane t). MatMul fills that
// table once per call for every 16-token tile (MatMulTile::xtab, the tile's table at its first
// token: xtab + t0 * KQuantActTableBytes(n_in), t0 a multiple of 16); a tile without one
// (xtab null) transposes its own a slice at a time. Bytes per token: those of its Q8_K row.
size_t KQuantActTableBytes(int64_t n_in);
// dst (16 x KQuantActTableBytes, 64-byte aligned) = the table of the nt <= 16 tokens whose Q8_K
// rows of n_in values are at xq + j * xq_stride (the lanes past nt repeat token 0).
void FillKQuantActTable(const uint8_t* xq, size_t xq_stride, int nt, int64_t n_in, uint8_t* dst);
// The same kernels (same bits) on weights interleaved in groups of kRepackRows rows (RepackRows,
// repack.h): Q4_K, Q5_K, Q6_K; nullptr for other types. w points at the first group, w_row_bytes
// is still one row's bytes.
MatMulTileFn MatMulTileKernelKInterleaved(DType wtype);
// Q8_0, Q4_0 and Q5_0 on weights in their 16-row layouts (repack.h; matmul_rows16_avx512.cc),
// up to kMatMulWideTileTokens tokens per tile, with the bits of MatMulTileKernel(wtype); nullptr
// for other types. Any row range [r0, r1); w points at the first group (rows of a group start a
// row's bytes apart as in the file, so a copy's rows from a group's first row on start at that
// row's offset). REQUIRES: CanRepackMatrix(wtype, Isa::kAvx512, n_in) (repack.h).
MatMulTileFn MatMulTileKernelRows16(DType wtype);
// Bytes of one token's table for those kernels (MatMulTile::xtab): per block -128 times each
// half block's activation sum and the activation scale.
size_t Q8_0ActTableBytes(int64_t n_in);
// dst (Q8_0ActTableBytes) = the table of one token's Q8_0 row xq of n_in values.
void FillQ8_0ActTable(const uint8_t* xq, int64_t n_in, uint8_t* dst);
}  // namespace avx512

}  // namespace gannet::cpu
