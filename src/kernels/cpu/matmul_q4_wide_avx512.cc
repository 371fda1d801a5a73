// AVX-512 VNNI tiles for Q4_0, Q4_1, Q5_0 and Q5_1 (against Q8_0 / Q8_1 activations) for 9..16
// tokens: prefill tiles, a speculative verification step, a batched decode step of up to 16
// sequences. Reached from Tile32 (matmul_q4_avx512.cc), which keeps the 8-row kernel for 1..8
// tokens.
//
// Tokens in the lanes, as the K-quant tiles of matmul_kquant_wide_avx512.cc. The 8-row kernel
// puts one row in each of 8 lanes and so transposes every 8 rows' nibbles per block and fills only
// 256-bit vectors; here lane t of a zmm is token t: vpdpbusd multiplies 4 codes of one row,
// broadcast to every lane from a small L1 buffer, with 4 activations of each of 16 tokens, and a
// lane gathers its token's exact half-block sum with no horizontal step. Per (4 rows, block, 16
// tokens): 32 vpdpbusd (each activation vector loaded once for the 4 rows), then per row 2
// converts, one scale multiply (dw * dx, the same for both halves) and 2 FMAs. A row's codes are
// unpacked once per tile into value order (low nibbles, then high, Q5's 5th bits added with qh
// itself as the byte mask: bit i of qh is value i's). The activations are transposed once per
// MatMul call into a table (FillQ32ActTable; MatMul keeps one per 16-token tile) or, without
// one, once per tile here.
//
// Bits: per (row, token, half block) the int32 sum is exact (|s| <= 16 x 31 x 128, the offset
// folded in as the chain's start: -8 or -16 times the half's activation sum), and the f32 steps
// are those of the AVX2 kernel (matmul_avx2.cc, Rows4Tile): convert, scale fl(dw * dx), FMA into
// the half's accumulator; for Q4_1 / Q5_1 the min's FMA, m * s into the first half's accumulator
// and 0 * s into the second's, as AVX2's zero lanes do; the halves added at the end. Each lane's
// arithmetic depends on its own token alone, so a (row, token) result does not depend on the
// tile's other tokens (MatMulQ32WideTiles checks both).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 intrinsics: see the K-quant file
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/matmul_wide_avx512_inl.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx512 {
namespace {

constexpr int kTokens = kWideTokens;
constexpr int kRows = kWideRows;
// Blocks per slice of a row group's unpacked codes: 16 x 4 rows x 32 bytes, 2 KiB of L1.
constexpr int kSliceBlocks = 16;
// A tile without MatMul's table transposes its activations into a stack buffer when they fit
// (2048 inputs); wider ones run the 8-row kernel (the same bits).
constexpr int64_t kOwnTableBlocks = 64;

// One block of a tile's activations: x[q] lane t = dword q (values 4q..4q+3) of token t's codes;
// nsum[h] lane t = minus token t's sum of codes over half h (values 16h..16h+15; int32); dx lane t
// its d, sx its s (Q8_1; zero for Q8_0), as f32. Every member a byte array (alignment 1): a
// caller's scratch need not be aligned.
struct WideBlock32 {
  int8_t x[8][64];
  uint8_t nsum[2][64];
  uint8_t dx[64];
  uint8_t sx[64];
};
static_assert(alignof(WideBlock32) == 1);
static_assert(sizeof(WideBlock32) % kTokens == 0);

template <class Act>
void FillBlocks32(const uint8_t* xq, size_t xq_stride, int nt, int64_t nb, WideBlock32* dst) {
  const Act* x[kTokens];
  for (int j = 0; j < kTokens; ++j)
    x[j] = reinterpret_cast<const Act*>(xq + (j < nt ? j : 0) * xq_stride);
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t b = 0; b < nb; b += 2) {
    const int64_t b1 = b + 1 < nb ? b + 1 : b;  // an odd last block: its pair is itself
    __m512i r[kTokens];
    for (int j = 0; j < kTokens; ++j) {
      r[j] = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j][b].qs))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j][b1].qs)), 1);
    }
    Transpose16(r);  // r[q] = dword q of block b (q < 8) or of block b1
    for (int h = 0; h < 2 && b + h < nb; ++h) {
      WideBlock32& o = dst[b + h];
      __m512i sum[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
      for (int q = 0; q < 8; ++q) {
        _mm512_storeu_si512(o.x[q], r[8 * h + q]);
        sum[q / 4] = _mm512_dpbusd_epi32(sum[q / 4], ones, r[8 * h + q]);
      }
      for (int i = 0; i < 2; ++i)
        _mm512_storeu_si512(o.nsum[i], _mm512_sub_epi32(_mm512_setzero_si512(), sum[i]));
      alignas(64) float dx[kTokens], sx[kTokens];
      for (int j = 0; j < kTokens; ++j) {
        dx[j] = _cvtsh_ss(x[j][b + h].d);
        if constexpr (std::is_same_v<Act, BlockQ8_1>) {
          sx[j] = _cvtsh_ss(x[j][b + h].s);
        } else {
          sx[j] = 0.0f;
        }
      }
      _mm512_storeu_ps(o.dx, _mm512_load_ps(dx));
      _mm512_storeu_ps(o.sx, _mm512_load_ps(sx));
    }
  }
}

// Per-type layout, as in matmul_q4_avx512.cc. kOffsetShift: log2 of the code offset (8, 16; 0
// with a block min); kMin: an additive block min m (times the activation block's s).
struct Q4_0Wide {
  using Block = BlockQ4_0;
  using Act = BlockQ8_0;
  static constexpr bool kMin = false, kFifthBit = false;
  static constexpr int kOffsetShift = 3;
};
struct Q4_1Wide {
  using Block = BlockQ4_1;
  using Act = BlockQ8_1;
  static constexpr bool kMin = true, kFifthBit = false;
  static constexpr int kOffsetShift = 0;
};
struct Q5_0Wide {
  using Block = BlockQ5_0;
  using Act = BlockQ8_0;
  static constexpr bool kMin = false, kFifthBit = true;
  static constexpr int kOffsetShift = 4;
};
struct Q5_1Wide {
  using Block = BlockQ5_1;
  using Act = BlockQ8_1;
  static constexpr bool kMin = true, kFifthBit = true;
  static constexpr int kOffsetShift = 0;
};

// The 4 rows' codes of kSliceBlocks blocks in value order (u8), and their scales as f32.
template <class T>
struct RowsSlice {
  alignas(64) uint8_t codes[kSliceBlocks][kRows][32];
  alignas(64) float dw[kSliceBlocks][kRows];
  alignas(64) float mw[kSliceBlocks][kRows];

  // Blocks [s0, s1) of the rows w[k].
  [[gnu::always_inline]] void Unpack(const uint8_t* const w[kRows], int64_t s0, int64_t s1) {
    using Block = typename T::Block;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = s0; b < s1; ++b) {
      const int64_t i = b - s0;
      for (int k = 0; k < kRows; ++k) {
        const uint8_t* blk = w[k] + static_cast<size_t>(b) * sizeof(Block);
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(Block, qs)));
        __m256i v = _mm256_and_si256(
            _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1), low4);
        if constexpr (T::kFifthBit) {
          uint32_t qh;
          std::memcpy(&qh, blk + offsetof(Block, qh), 4);
          v = _mm256_mask_add_epi8(v, qh, v, _mm256_set1_epi8(16));
        }
        _mm256_store_si256(reinterpret_cast<__m256i*>(codes[i][k]), v);
        uint16_t d;
        std::memcpy(&d, blk + offsetof(Block, d), 2);
        dw[i][k] = _cvtsh_ss(d);
        if constexpr (T::kMin) {
          uint16_t m;
          std::memcpy(&m, blk + offsetof(Block, m), 2);
          mw[i][k] = _cvtsh_ss(m);
        }
      }
    }
  }
};

static inline __m512i Broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// acc_lo[k] / acc_hi[k] += block i of the slice's products of row k with the 16 tokens.
template <class T>
[[gnu::always_inline]] inline void AccumulateBlock(const RowsSlice<T>& rs, int i,
                                                   const WideBlock32& xb, __m512 acc_lo[kRows],
                                                   __m512 acc_hi[kRows]) {
  __m512i s_lo[kRows], s_hi[kRows];
  {
    __m512i start_lo = _mm512_setzero_si512(), start_hi = _mm512_setzero_si512();
    if constexpr (!T::kMin) {
      start_lo = _mm512_slli_epi32(_mm512_loadu_si512(xb.nsum[0]), T::kOffsetShift);
      start_hi = _mm512_slli_epi32(_mm512_loadu_si512(xb.nsum[1]), T::kOffsetShift);
    }
    for (int k = 0; k < kRows; ++k) {
      s_lo[k] = start_lo;
      s_hi[k] = start_hi;
    }
  }
  for (int q = 0; q < 4; ++q) {
    const __m512i x_lo = _mm512_loadu_si512(xb.x[q]), x_hi = _mm512_loadu_si512(xb.x[q + 4]);
    for (int k = 0; k < kRows; ++k) {
      s_lo[k] = _mm512_dpbusd_epi32(s_lo[k], Broadcast4(rs.codes[i][k] + 4 * q), x_lo);
      s_hi[k] = _mm512_dpbusd_epi32(s_hi[k], Broadcast4(rs.codes[i][k] + 16 + 4 * q), x_hi);
    }
  }
  const __m512 dx = _mm512_loadu_ps(xb.dx);
  for (int k = 0; k < kRows; ++k) {
    const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(rs.dw[i][k]), dx);
    acc_lo[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_lo[k]), scale, acc_lo[k]);
    acc_hi[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_hi[k]), scale, acc_hi[k]);
  }
  if constexpr (T::kMin) {
    const __m512 sx = _mm512_loadu_ps(xb.sx);
    for (int k = 0; k < kRows; ++k) {
      acc_lo[k] = _mm512_fmadd_ps(_mm512_set1_ps(rs.mw[i][k]), sx, acc_lo[k]);
      acc_hi[k] = _mm512_fmadd_ps(_mm512_setzero_ps(), sx, acc_hi[k]);
    }
  }
}

// Rows [r0, r1) of the tile against its table xs (nb blocks), 4 rows at a time, each group over
// its whole row (the table from L1 or L2). A last group of fewer rows repeats its last row (not
// stored).
template <class T>
void RunRows(const MatMulTile& t, const WideBlock32* xs, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 32;
  RowsSlice<T> rs;
  for (int64_t r = r0; r < r1; r += kRows) {
    const uint8_t* w[kRows];
    for (int k = 0; k < kRows; ++k)
      w[k] = t.w + static_cast<size_t>(std::min<int64_t>(r + k, r1 - 1)) * t.w_row_bytes;
    __m512 acc_lo[kRows], acc_hi[kRows];
    for (int k = 0; k < kRows; ++k) acc_lo[k] = acc_hi[k] = _mm512_setzero_ps();
    for (int64_t s0 = 0; s0 < nb; s0 += kSliceBlocks) {
      const int64_t s1 = std::min<int64_t>(nb, s0 + kSliceBlocks);
      rs.Unpack(w, s0, s1);
      for (int64_t b = s0; b < s1; ++b)
        AccumulateBlock(rs, static_cast<int>(b - s0), xs[b], acc_lo, acc_hi);
    }
    __m512 sum[kRows];
    for (int k = 0; k < kRows; ++k) sum[k] = _mm512_add_ps(acc_lo[k], acc_hi[k]);
    StoreAcc(t, r, r1, sum);
  }
}

template <class T>
void Wide32(const MatMulTile& t, int64_t r0, int64_t r1) {
  if (t.xtab != nullptr) return RunRows<T>(t, reinterpret_cast<const WideBlock32*>(t.xtab), r0, r1);
  const int64_t nb = t.n_in / 32;
  alignas(64) WideBlock32 buf[kOwnTableBlocks];
  FillBlocks32<typename T::Act>(t.xq, t.xq_stride, t.nt, nb, buf);
  RunRows<T>(t, buf, r0, r1);
}

}  // namespace

size_t Q32ActTableBytes(int64_t n_in) {
  return static_cast<size_t>(n_in / 32) * (sizeof(WideBlock32) / kTokens);
}

void FillQ32ActTable(DType partner, const uint8_t* xq, size_t xq_stride, int nt, int64_t n_in,
                     uint8_t* dst) {
  auto* out = reinterpret_cast<WideBlock32*>(dst);
  if (partner == DType::kQ8_1) {
    FillBlocks32<BlockQ8_1>(xq, xq_stride, nt, n_in / 32, out);
  } else {
    FillBlocks32<BlockQ8_0>(xq, xq_stride, nt, n_in / 32, out);
  }
}

bool Tile32WideTakes(const MatMulTile& t) {
  return t.nt > kWideTokens / 2 && t.nt <= kWideTokens &&
         (t.xtab != nullptr || t.n_in / 32 <= kOwnTableBlocks);
}

MatMulTileFn MatMulTileKernel32Wide(DType wtype) {
  switch (wtype) {
    case DType::kQ4_0:
      return &Wide32<Q4_0Wide>;
    case DType::kQ4_1:
      return &Wide32<Q4_1Wide>;
    case DType::kQ5_0:
      return &Wide32<Q5_0Wide>;
    case DType::kQ5_1:
      return &Wide32<Q5_1Wide>;
    default:
      return nullptr;
  }
}

}  // namespace gannet::cpu::avx512
