// AVX-512 VNNI tiles for Q4_0, Q4_1, Q5_0 and Q5_1 (against Q8_0 / Q8_1 activations) for 7..16
// tokens: prefill tiles, a speculative verification step, a batched decode step of up to 16
// sequences. Reached from Tile32 (matmul_q4_avx512.cc), whose 8-row kernel (one row per lane)
// takes fewer tokens (Tile32WideTokens says which).
//
// Tokens in the lanes, as the K-quant tiles of matmul_kquant_wide_avx512.cc. The 8-row kernel
// transposes every 8 rows' nibbles per block and fills only 256-bit vectors; here lane t of a zmm
// is token t: vpdpbusd multiplies 4 codes of one row, broadcast to every lane from a small L1
// buffer, with 4 activations of each of 16 tokens, and a lane gathers its token's exact
// half-block sum with no horizontal step. Per (4 rows, block, 16 tokens): 32 vpdpbusd (each
// activation vector loaded once for the 4 rows), then per row 2 converts, one scale multiply
// (dw * dx, the same for both halves) and 2 FMAs. For 7 or 8 tokens (and the first 8 of 9..11) a
// lane pair holds one token and two rows (R == 2 below), so that no lane idles. A row's codes are
// unpacked once per tile (Q5's 5th bits added with qh itself as the byte mask: bit i of qh is
// value i's). The activations are transposed once per MatMul call into a table
// (FillQ32ActTable; MatMul keeps one per 16-token tile) or, without one, once per tile here.
// Single-core rates on 2048 x 640 (Zen 4, G multiply-adds/s, the 8-row kernel's in brackets):
// 16 tokens Q4_0 132 (94), Q5_0 120 (74); 8 tokens 118 (93), 99 (73).
//
// Bits: per (row, token, half block) the int32 sum is exact (|s| <= 16 x 31 x 128, the offset
// folded in as the chain's start: -8 or -16 times the half's activation sum), and the f32 steps
// are those of the AVX2 kernel (matmul_avx2.cc, Rows4Tile): convert, scale fl(dw * dx), FMA into
// the half's accumulator; for Q4_1 / Q5_1 the min's FMA, m * s into the first half's accumulator
// and 0 * s into the second's, as AVX2's zero lanes do; the halves added at the end. Each lane's
// arithmetic depends on its own token and row alone, so a (row, token) result does not depend on
// the tile's other tokens (MatMulQ32WideTiles checks both).
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
constexpr int kSliceBlocks = 4;
// A tile without MatMul's table transposes its activations into a stack buffer when they fit
// (2048 inputs); wider ones run the 8-row kernel (the same bits).
constexpr int64_t kOwnTableBlocks = 64;
// Which tiles take which token counts. Single-core rates of one matmul on 2048 x 640 (Zen 4, G
// multiply-adds/s, Q4_0 / Q5_0) favoured 8-token steps (two rows per lane pair) from 7 tokens on
// (105 / 88 at 7, against 91 / 75 in the 8-row kernel) and 8 of them plus the rest in the 8-row
// kernel at 9..11 (99 / 79 at 9, against 83 / 64). In the model they did not: Gemma 3's fused
// gate/up pair (2 x 2048 x 640 Q5_0, 2 threads, `gannet bench -p N --profile`) ran at 84 G/s at
// 8 tokens and 91 at 9 this way, against 122 and 116 in the 8-row kernel (below 9 tokens MatMul
// fills no table, so every chunk of rows transposes its tokens again; at 9 the rest's pass reads
// the weights a second time). So only 12 tokens and more take these tiles, one 16-lane tile
// (there 121 -> 144 at 16 tokens, 121 -> 114 at 12); the 8-token steps stay, tested, for a
// caller that fills the table.
constexpr int kMinOneTileTokens = kQ32WideMinTokens;

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
void FillBlocks32(const uint8_t* xq, size_t xq_stride, int nt, int64_t nb, WideBlock32* dst,
                  int spread = 1) {
  const Act* x[kTokens];
  for (int j = 0; j < kTokens; ++j)
    x[j] = reinterpret_cast<const Act*>(xq + (j / spread < nt ? j / spread : 0) * xq_stride);
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

// Per-type layout, as in matmul_q4_avx512.cc. kOffsetShift: log2 of the code offset (8, 16);
// kMin: an additive block min m (times the activation block's s) instead of an offset.
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
};

// Lane groups. R == 1: lane t is token t (16 tokens), a step takes 4 rows, one per vector.
// R == 2: lane 2j + k is token j and row 2g + k of vector g (8 tokens), a step takes 8 rows; the
// codes of a row pair are interleaved dword by dword, so that one 64-bit broadcast puts row 2g's
// dword in the even lanes and row 2g + 1's in the odd ones, and the activations (lane t = token t
// in the table) are spread over lane pairs by a permute. 8 tokens fill every lane, where R == 1
// would leave half of them idle.
template <int R>
constexpr int kStepRows = kRows* R;

// A step's codes are unpacked two rows (A = 2p, B = 2p + 1) at a time into 64 bytes per block:
// R == 1, [A's values 0..15 | B's 0..15 | A's 16..31 | B's 16..31]; R == 2, the same dword by
// dword interleaved, [A0 B0 A1 B1 .. A7 B7] (Aq: A's dword q), so that one 64-bit broadcast puts
// A's dword in the even lanes and B's in the odd ones. CodeOffset: the byte of row g's dword q
// (R == 2: of the pair g's) in the block's kStepRows / 2 x 64 bytes.
template <int R>
constexpr int CodeOffset(int g, int q) {
  if constexpr (R == 1) {
    return (g / 2) * 64 + (q / 4) * 32 + (g % 2) * 16 + (q % 4) * 4;
  } else {
    return g * 64 + 8 * q;
  }
}

// A step's codes of kSliceBlocks blocks (u8), and their scales as f32 (row k at [k]).
template <class T, int R>
struct RowsSlice {
  static constexpr int kStep = kStepRows<R>;
  alignas(64) uint8_t codes[kSliceBlocks][kStep / 2 * 64];
  alignas(64) float dw[kSliceBlocks][kStep];
  alignas(64) float mw[kSliceBlocks][kStep];

  // Blocks [s0, s1) of the rows w[k]. Per pair of rows: one 256-bit load, two masks, and (R == 2)
  // two permutes; Q5's 5th bits added where qh has them (bit i of qh: value i).
  [[gnu::always_inline]] void Unpack(const uint8_t* const w[kStep], int64_t s0, int64_t s1) {
    using Block = typename T::Block;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i sixteen = _mm256_set1_epi8(16);
    const __m256i interleave = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = s0; b < s1; ++b) {
      const int64_t i = b - s0;
      const size_t at = static_cast<size_t>(b) * sizeof(Block);
      for (int p = 0; p < kStep / 2; ++p) {
        const uint8_t* ba = w[2 * p] + at;
        const uint8_t* bb = w[2 * p + 1] + at;
        const __m256i q = _mm256_inserti128_si256(
            _mm256_castsi128_si256(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(ba + offsetof(Block, qs)))),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(bb + offsetof(Block, qs))), 1);
        __m256i lo = _mm256_and_si256(q, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if constexpr (T::kFifthBit) {
          uint32_t ha, hb;
          std::memcpy(&ha, ba + offsetof(Block, qh), 4);
          std::memcpy(&hb, bb + offsetof(Block, qh), 4);
          lo = _mm256_mask_add_epi8(lo, (ha & 0xFFFFu) | hb << 16, lo, sixteen);
          hi = _mm256_mask_add_epi8(hi, ha >> 16 | (hb & 0xFFFF0000u), hi, sixteen);
        }
        if constexpr (R == 2) {
          lo = _mm256_permutevar8x32_epi32(lo, interleave);
          hi = _mm256_permutevar8x32_epi32(hi, interleave);
        }
        auto* dst = reinterpret_cast<__m256i*>(codes[i] + 64 * p);
        _mm256_store_si256(dst, lo);
        _mm256_store_si256(dst + 1, hi);
      }
      Scales(w, at + offsetof(Block, d), dw[i]);
      if constexpr (T::kMin) Scales(w, at + offsetof(Block, m), mw[i]);
    }
  }

  // dst[k] = the f16 at w[k] + off, 4 rows per conversion (packed in a u64 by scalar loads and
  // shifts).
  [[gnu::always_inline]] static void Scales(const uint8_t* const w[kStep], size_t off, float* dst) {
    for (int k0 = 0; k0 < kStep; k0 += 4) {
      uint64_t packed = 0;
      for (int k = 0; k < 4; ++k) {
        uint16_t h;
        std::memcpy(&h, w[k0 + k] + off, 2);
        packed |= uint64_t{h} << (16 * k);
      }
      _mm_store_ps(dst + k0, _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(packed))));
    }
  }
};

// R adjacent u32 (R == 1: one; R == 2: a pair) at p, repeated over the 16 lanes.
template <int R>
static inline __m512i BroadcastR(const void* p) {
  if constexpr (R == 1) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  } else {
    // As one u64, which the compiler broadcasts straight from memory (vpbroadcastq). Measured
    // on Zen 4, 8 tokens of 2048 x 640 Q4_0: 118 G multiply-adds/s, against 95 for the f64
    // broadcast (vbroadcastsd) of the same bytes; vbroadcasti32x2 from memory compiled to a load
    // and a register shuffle.
    long long v;
    std::memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
  }
}
template <int R>
static inline __m512 BroadcastRf(const float* p) {
  return _mm512_castsi512_ps(BroadcastR<R>(p));
}

// A table vector as the lanes of the step: R == 1 as it is; R == 2 tokens 0..7 spread over lane
// pairs (lane 2j + k = token j).
template <int R, bool kSpread>
static inline __m512i TableLanes(const void* p) {
  const __m512i v = _mm512_loadu_si512(p);
  if constexpr (R == 1 || kSpread) {
    return v;
  } else {
    const __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    return _mm512_permutexvar_epi32(pairs, v);
  }
}

// acc_lo[g] / acc_hi[g] += block i of the slice's products of the step's rows with the tokens.
template <class T, int R, bool kSpread>
[[gnu::always_inline]] inline void AccumulateBlock(const RowsSlice<T, R>& rs, int i,
                                                   const WideBlock32& xb, __m512 acc_lo[kRows],
                                                   __m512 acc_hi[kRows]) {
  __m512i s_lo[kRows], s_hi[kRows];
  {
    __m512i start_lo = _mm512_setzero_si512(), start_hi = _mm512_setzero_si512();
    if constexpr (!T::kMin) {
      start_lo = _mm512_slli_epi32(TableLanes<R, kSpread>(xb.nsum[0]), T::kOffsetShift);
      start_hi = _mm512_slli_epi32(TableLanes<R, kSpread>(xb.nsum[1]), T::kOffsetShift);
    }
    for (int g = 0; g < kRows; ++g) {
      s_lo[g] = start_lo;
      s_hi[g] = start_hi;
    }
  }
  for (int q = 0; q < 4; ++q) {
    const __m512i x_lo = TableLanes<R, kSpread>(xb.x[q]),
                  x_hi = TableLanes<R, kSpread>(xb.x[q + 4]);
    for (int g = 0; g < kRows; ++g) {
      s_lo[g] =
          _mm512_dpbusd_epi32(s_lo[g], BroadcastR<R>(rs.codes[i] + CodeOffset<R>(g, q)), x_lo);
      s_hi[g] =
          _mm512_dpbusd_epi32(s_hi[g], BroadcastR<R>(rs.codes[i] + CodeOffset<R>(g, q + 4)), x_hi);
    }
  }
  const __m512 dx = _mm512_castsi512_ps(TableLanes<R, kSpread>(xb.dx));
  for (int g = 0; g < kRows; ++g) {
    const __m512 scale = _mm512_mul_ps(BroadcastRf<R>(&rs.dw[i][R * g]), dx);
    acc_lo[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_lo[g]), scale, acc_lo[g]);
    acc_hi[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_hi[g]), scale, acc_hi[g]);
  }
  if constexpr (T::kMin) {
    const __m512 sx = _mm512_castsi512_ps(TableLanes<R, kSpread>(xb.sx));
    for (int g = 0; g < kRows; ++g) {
      acc_lo[g] = _mm512_fmadd_ps(BroadcastRf<R>(&rs.mw[i][R * g]), sx, acc_lo[g]);
      acc_hi[g] = _mm512_fmadd_ps(_mm512_setzero_ps(), sx, acc_hi[g]);
    }
  }
}

// y[j][r + 2g + k] = lane 2j + k of acc[g] (R == 2) for the tile's tokens and rows below r1.
static inline void StorePairs(const MatMulTile& t, int64_t r, int64_t r1, const __m512 acc[kRows]) {
  alignas(64) float s[kRows][kTokens];
  for (int g = 0; g < kRows; ++g) _mm512_store_ps(s[g], acc[g]);
  for (int j = 0; j < t.nt; ++j) {
    float* dst = t.y + j * t.y_stride + r;
    if (r + kStepRows<2> <= r1) {
      for (int g = 0; g < kRows; ++g) std::memcpy(dst + 2 * g, &s[g][2 * j], 2 * sizeof(float));
    } else {
      for (int k = 0; r + k < r1; ++k) dst[k] = s[k / 2][2 * j + k % 2];
    }
  }
}

// Rows [r0, r1) of the tile against its table xs (nb blocks), a step of rows at a time, each over
// its whole row (the table from L1 or L2). A last step of fewer rows repeats its last row (not
// stored).
template <class T, int R, bool kSpread>
void RunRows(const MatMulTile& t, const WideBlock32* xs, int64_t r0, int64_t r1) {
  constexpr int kStep = kStepRows<R>;
  const int64_t nb = t.n_in / 32;
  RowsSlice<T, R> rs;
  for (int64_t r = r0; r < r1; r += kStep) {
    const uint8_t* w[kStep];
    for (int k = 0; k < kStep; ++k)
      w[k] = t.w + static_cast<size_t>(std::min<int64_t>(r + k, r1 - 1)) * t.w_row_bytes;
    __m512 acc_lo[kRows], acc_hi[kRows];
    for (int g = 0; g < kRows; ++g) acc_lo[g] = acc_hi[g] = _mm512_setzero_ps();
    for (int64_t s0 = 0; s0 < nb; s0 += kSliceBlocks) {
      const int64_t s1 = std::min<int64_t>(nb, s0 + kSliceBlocks);
      rs.Unpack(w, s0, s1);
      for (int64_t b = s0; b < s1; ++b)
        AccumulateBlock<T, R, kSpread>(rs, static_cast<int>(b - s0), xs[b], acc_lo, acc_hi);
    }
    __m512 sum[kRows];
    for (int g = 0; g < kRows; ++g) sum[g] = _mm512_add_ps(acc_lo[g], acc_hi[g]);
    if constexpr (R == 1) {
      StoreAcc(t, r, r1, sum);
    } else {
      StorePairs(t, r, r1, sum);
    }
  }
}

// Up to 8 tokens: R == 2, on a table of its own with each token in two lanes (or, for rows too
// wide for it, MatMul's table, spread by permutes); more: R == 1.
template <class T>
void Wide32(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 32;
  const auto* xtab = reinterpret_cast<const WideBlock32*>(t.xtab);
  if (nb > kOwnTableBlocks) {  // (Tile32WideTokens: only with MatMul's table)
    return t.nt <= kTokens / 2 ? RunRows<T, 2, false>(t, xtab, r0, r1)
                               : RunRows<T, 1, false>(t, xtab, r0, r1);
  }
  alignas(64) WideBlock32 buf[kOwnTableBlocks];
  if (t.nt <= kTokens / 2) {
    FillBlocks32<typename T::Act>(t.xq, t.xq_stride, t.nt, nb, buf, 2);
    return RunRows<T, 2, true>(t, buf, r0, r1);
  }
  if (xtab != nullptr) return RunRows<T, 1, false>(t, xtab, r0, r1);
  FillBlocks32<typename T::Act>(t.xq, t.xq_stride, t.nt, nb, buf);
  RunRows<T, 1, false>(t, buf, r0, r1);
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

int Tile32WideTokens(const MatMulTile& t) {
  if (t.xtab == nullptr && t.n_in / 32 > kOwnTableBlocks) return 0;
  return t.nt >= kMinOneTileTokens ? t.nt : 0;
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
