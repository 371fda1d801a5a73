// AVX-512 (VL, BW) + VNNI matmul tiles for the 32-value row-block types with unsigned codes,
// Q4_0 and Q5_0 (against Q8_0 activations), Q4_1 and Q5_1 (against Q8_1), file layout.
//
// The AVX2 kernels (matmul_avx2.cc, Rows4Tile) take 4 weight rows per step and reduce the four
// rows' products with a token's block so that row k's two half-block sums land in lanes k and
// 4 + k of a ymm. Here one vector lane is one row, and the products need no reduction at all:
// for 8 rows and one block,
//   T_j = dword j (4 packed bytes) of the 8 rows' 16 bytes of nibbles, one row per lane
//         (an 8 x 4 dword transpose: 4 inserts and 8 shuffles, shared by all tokens of a tile),
//   lo_j = T_j & 0x0F: values 4j .. 4j + 3 of each row; hi_j = T_j & 0xF0: values 16 + 4j ..
//         16 + 4j + 3, kept in place (16 times the code),
//   s_lo = start_lo + sum_j dpbusd(lo_j, x dword j broadcast), s_hi likewise with x dwords 4..7
//         (vpdpbusd: unsigned codes times signed activations, 4 products into an int32 lane; the
//         broadcast comes from memory for free),
// where start = -(8 * the half block's activation sum) for Q4_0 (times 16 for the high half) and
// 0 for Q4_1: s_lo and 16 s_hi are the exact half-block sums of the 8 rows. Q5_0 / Q5_1 add
// each code's 5th bit (a byte test of the spread qh bytes and a masked add of 16) and take the
// high nibbles shifted down (16 * 31 does not fit a byte), so their s_hi comes unscaled. Per (8
// rows, token, block) that is 8 vpdpbusd, where AVX2 spends 8 maddubs and a 20-op int16 tree.
//
// Measured alternatives (Zen 4): 512-bit vectors bought nothing (every zmm shuffle costs a full
// cycle, and 4-rows-per-zmm layouts need a cross-lane reduction per token); 4 rows with both
// halves in one ymm ([r0..r3 | 16 r0..16 r3], the activations pre-arranged per block) was ~10%
// faster for one token in cache, but its 224-byte-per-block activation table crowded L1 while
// the weights streamed from memory (2/3 of AVX2's rate on a matrix beyond the caches).
//
// Bits. The int32 sums are exact whatever the order. The high half's sum arrives times 16, and its
// scale is dw * (dx / 16): dx / 16 is exact (an f16 value times 2^-4 stays a normal f32), so is
// the f32 product dw * dx / 16 = fl(dw * dx) / 16 (|dw dx| >= 2^-48 or 0: no f32 underflow), and
// 16 s times fl(dw dx) / 16 is the same real number as s times fl(dw dx): the FMA rounds the same
// value. So per (row, half block) the f32 steps are the AVX2 kernel's: convert, scale dw * dx,
// FMA into the half's accumulator; for Q4_1 the min term's FMA (m * s into the first half's
// accumulator, 0 * s into the second's, as AVX2's zero lanes do); the halves added at the end.
// Every row has the AVX2 target's bits, whatever the batch (MatMulConformance.Avx512BitsEqualAvx2
// and the row-block edge tests check it).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx512 {
namespace {

// Rows per kernel step (one per ymm lane) and tokens per weight preparation (two accumulators
// per token, 16 of the 32 vector registers).
constexpr int kRows = 8;
constexpr int kSubTileTokens = 8;

static inline __m128i Load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
static inline uint64_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
static inline int32_t LoadI32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Weights stream from memory in decode (and in a chunk's first prefill tile). The 8 rows of a
// step are one contiguous span read as 8 interleaved streams, which the hardware prefetchers
// follow poorly: each block step also fetches 8 blocks' bytes of the span kPrefetchRows ahead
// into L1 and of the span kPrefetchRowsL2 ahead into L2, so that both are fetched in order. One
// step ahead into L1 measured best (a 65536 x 2048 matrix, one token: 12 or 16 rows ahead were
// 10-25% slower, L1 crowded; without prefetching the kernel ran at two thirds of AVX2's rate);
// the L2 prefetch, further ahead, covers the DRAM latency where rows are short (decode of
// SmolLM2-shaped Q4_0, 576 and 1536 inputs: ~10% faster per token with it, 3 steps ahead
// better than 2 or 5).
constexpr int64_t kPrefetchRows = kRows;
constexpr int64_t kPrefetchRowsL2 = 3 * kRows;

template <class Block>
[[gnu::always_inline]] inline void PrefetchAhead(const uint8_t* w0, size_t stride, int64_t b) {
  static_assert(8 * sizeof(Block) <= 3 * 64);
  const size_t at = static_cast<size_t>(b) * 8 * sizeof(Block);
  const char* p = reinterpret_cast<const char*>(w0 + kPrefetchRows * stride + at);
  _mm_prefetch(p, _MM_HINT_T0);
  _mm_prefetch(p + 64, _MM_HINT_T0);
  _mm_prefetch(p + 128, _MM_HINT_T0);
  const char* q = reinterpret_cast<const char*>(w0 + kPrefetchRowsL2 * stride + at);
  _mm_prefetch(q, _MM_HINT_T1);
  _mm_prefetch(q + 64, _MM_HINT_T1);
  _mm_prefetch(q + 128, _MM_HINT_T1);
}

// (The kernels' helpers are forced inline: GCC 12 left Accumulate out of line once the loop
// grew, at half the speed.)

// Per-type layout. kOffsetShift: log2 of the code offset (Q4_0's 8, Q5_0's 16; the types with a
// block min have none); kMin: an additive block min (m * the activation block's s) instead of an
// offset; kFifthBit: Q5's qh
// bits, which leave no room to keep the high nibbles in place (16 * 31 > 255): Q5 shifts them
// down, its high half comes unscaled and takes dx as it is.
struct Q4_0Rows {
  static constexpr DType kType = DType::kQ4_0;
  using Block = BlockQ4_0;
  using Act = BlockQ8_0;
  static constexpr bool kMin = false;
  static constexpr int kOffsetShift = 3;
  static constexpr bool kFifthBit = false;
};
struct Q4_1Rows {
  static constexpr DType kType = DType::kQ4_1;
  using Block = BlockQ4_1;
  using Act = BlockQ8_1;
  static constexpr bool kMin = true;
  static constexpr bool kFifthBit = false;
};
struct Q5_0Rows {
  static constexpr DType kType = DType::kQ5_0;
  using Block = BlockQ5_0;
  using Act = BlockQ8_0;
  static constexpr bool kMin = false;
  static constexpr int kOffsetShift = 4;
  static constexpr bool kFifthBit = true;
};
struct Q5_1Rows {
  static constexpr DType kType = DType::kQ5_1;
  using Block = BlockQ5_1;
  using Act = BlockQ8_1;
  static constexpr bool kMin = true;
  static constexpr bool kFifthBit = true;
};

// Per (token, block) of one pass: the dpbusd chains' starts and the scales' activation factors.
// (No member initialisers: the table is filled entry by entry, and a zeroed 40 KiB array per
// call cost 10% of a one-token call.)
struct ActScalars {
  int32_t start_lo, start_hi;  // see the top of the file (Q4_0)
  float dx, dx16;              // the activation block's d, and d / 16 (Q5: d)
  float sx;                    // its s (Q4_1)
};
struct ActTable {
  const ActScalars* e = nullptr;  // [b * pt + j]
  int64_t nb = 0;
  int pt = 0;
};
// The table lives on the stack of the calling thread (20 bytes per token and block: 2048
// blocks, 64k inputs, per token). Wider rows run the AVX2 kernel (the same bits); Q4_0 / Q5_0
// leave the row-block kernel earlier, where AVX2 does (58k inputs, avx2::RowBlockMaxBlocks).
constexpr size_t kTableBytes = 40 * 1024;

template <class T>
ActTable FillActTable(const MatMulTile& t, ActScalars* buf) {
  using Act = typename T::Act;
  ActTable tab;
  tab.nb = t.n_in / 32;
  tab.pt = t.nt;
  for (int j = 0; j < t.nt; ++j) {
    const Act* x = reinterpret_cast<const Act*>(t.xq + j * t.xq_stride);
    for (int64_t b = 0; b < tab.nb; ++b) {
      ActScalars& s = buf[b * t.nt + j];
      s.dx = _cvtsh_ss(x[b].d);
      s.dx16 = T::kFifthBit ? s.dx : s.dx * 0.0625f;
      if constexpr (T::kMin) {
        s.sx = _cvtsh_ss(x[b].s);
        s.start_lo = s.start_hi = 0;
      } else {
        // The halves' sums: dpbusd with ones, then the 4 lanes of each 128-bit half.
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
        __m256i v = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
        v = _mm256_add_epi32(v, _mm256_shuffle_epi32(v, 0x4E));
        v = _mm256_add_epi32(v, _mm256_shuffle_epi32(v, 0xB1));
        const int32_t sum_lo = _mm256_cvtsi256_si32(v);
        const int32_t sum_hi = _mm_cvtsi128_si32(_mm256_extracti128_si256(v, 1));
        s.start_lo = -(sum_lo << T::kOffsetShift);
        s.start_hi = -(sum_hi << (T::kOffsetShift + (T::kFifthBit ? 0 : 4)));
      }
    }
  }
  tab.e = buf;
  return tab;
}

// The 8 rows' weights of one block, ready for any number of tokens. Row(k) points at row k's
// block.
template <class T>
struct RowsBlock {
  __m256i lo[4], hi[4];
  __m256 dw;  // row k's d in lane k
  __m256 mw;  // row k's m in lane k (Q4_1)

  template <class RowFn>
  [[gnu::always_inline]] explicit RowsBlock(RowFn row) {
    using Block = typename T::Block;
    __m256i a[4];  // [row 2g | row 2g + 1] packed nibbles
    for (int g = 0; g < 4; ++g) {
      a[g] =
          _mm256_inserti128_si256(_mm256_castsi128_si256(Load128(row(2 * g) + offsetof(Block, qs))),
                                  Load128(row(2 * g + 1) + offsetof(Block, qs)), 1);
    }
    // [rows 0..3 | rows 4..7] dword j and j + 1 (pairs 0, 1 and 2, 3), then one half from each.
    const __m256i i01 = _mm256_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13);
    const __m256i i23 = _mm256_setr_epi32(2, 6, 10, 14, 3, 7, 11, 15);
    const __m256i p01 = _mm256_permutex2var_epi32(a[0], i01, a[1]);
    const __m256i q01 = _mm256_permutex2var_epi32(a[2], i01, a[3]);
    const __m256i p23 = _mm256_permutex2var_epi32(a[0], i23, a[1]);
    const __m256i q23 = _mm256_permutex2var_epi32(a[2], i23, a[3]);
    const __m256i tr[4] = {
        _mm256_permute2x128_si256(p01, q01, 0x20), _mm256_permute2x128_si256(p01, q01, 0x31),
        _mm256_permute2x128_si256(p23, q23, 0x20), _mm256_permute2x128_si256(p23, q23, 0x31)};
    const __m256i m_lo = _mm256_set1_epi8(0x0F), m_hi = _mm256_set1_epi8(static_cast<char>(0xF0));
    for (int j = 0; j < 4; ++j) {
      lo[j] = _mm256_and_si256(tr[j], m_lo);
      hi[j] = T::kFifthBit ? _mm256_and_si256(_mm256_srli_epi16(tr[j], 4), m_lo)
                           : _mm256_and_si256(tr[j], m_hi);
    }
    if constexpr (T::kFifthBit) {
      // Byte i of lane k of lo_j is value 4j + i of row k: its 5th bit is bit 4 (j % 2) + i of
      // qh byte j / 2 (hi_j: of qh byte 2 + j / 2). Each of the 4 qh bytes is spread over its
      // lane's bytes, tested against [1 2 4 8] or [16 32 64 128], and adds 16 where set.
      const __m256i qh = Qh8(row, offsetof(Block, qh));
      const __m256i bits_even = _mm256_set1_epi32(0x08040201);
      const __m256i bits_odd = _mm256_set1_epi32(static_cast<int>(0x80402010u));
      const __m256i sixteen = _mm256_set1_epi8(16);
      // pshufb control: every byte of dword p of a 128-bit lane reads byte 4p + m.
      const __m256i dword_base = _mm256_setr_epi32(0, 0x04040404, 0x08080808, 0x0C0C0C0C, 0,
                                                   0x04040404, 0x08080808, 0x0C0C0C0C);
      for (int m = 0; m < 4; ++m) {
        const __m256i spread = _mm256_shuffle_epi8(
            qh, _mm256_add_epi8(dword_base, _mm256_set1_epi8(static_cast<char>(m))));
        __m256i* v = m < 2 ? lo : hi;
        const int j0 = 2 * (m % 2);
        v[j0] =
            _mm256_mask_add_epi8(v[j0], _mm256_test_epi8_mask(spread, bits_even), v[j0], sixteen);
        v[j0 + 1] = _mm256_mask_add_epi8(v[j0 + 1], _mm256_test_epi8_mask(spread, bits_odd),
                                         v[j0 + 1], sixteen);
      }
    }
    dw = Halves8(row, offsetof(Block, d));
    if constexpr (T::kMin) mw = Halves8(row, offsetof(Block, m));
  }

  // Eight u32 (row k's at row(k) + off), row k's in lane k.
  template <class RowFn>
  [[gnu::always_inline]] static __m256i Qh8(RowFn row, size_t off) {
    const auto two = [&](int k) {
      return static_cast<long long>(static_cast<uint32_t>(LoadI32(row(k) + off)) |
                                    uint64_t{static_cast<uint32_t>(LoadI32(row(k + 1) + off))}
                                        << 32);
    };
    return _mm256_setr_epi64x(two(0), two(2), two(4), two(6));
  }

  // Eight f16 (row k's at row(k) + off) as f32. Scalar loads and shifts into two u64: an array
  // of narrow stores read back wide would miss store forwarding (measured 3x slower).
  template <class RowFn>
  [[gnu::always_inline]] static __m256 Halves8(RowFn row, size_t off) {
    const auto four = [&](int k0) {
      return LoadU16(row(k0) + off) | LoadU16(row(k0 + 1) + off) << 16 |
             LoadU16(row(k0 + 2) + off) << 32 | LoadU16(row(k0 + 3) + off) << 48;
    };
    const __m128i h = _mm_unpacklo_epi64(_mm_cvtsi64_si128(static_cast<long long>(four(0))),
                                         _mm_cvtsi64_si128(static_cast<long long>(four(4))));
    return _mm256_cvtph_ps(h);
  }

  // acc_lo / acc_hi += this block's products with one token (activation block x, its scalars s).
  [[gnu::always_inline]] void Accumulate(const typename T::Act& x, const ActScalars& s,
                                         __m256* acc_lo, __m256* acc_hi) const {
    // Two chains of two per half (integer sums: exact in any order), for a shorter latency.
    __m256i p_lo = _mm256_set1_epi32(s.start_lo), p_hi = _mm256_set1_epi32(s.start_hi);
    if constexpr (T::kMin) p_lo = p_hi = _mm256_setzero_si256();
    __m256i q_lo = _mm256_setzero_si256(), q_hi = _mm256_setzero_si256();
    const auto xd = [&](int i) { return _mm256_set1_epi32(LoadI32(x.qs + 4 * i)); };
    p_lo = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(p_lo, lo[0], xd(0)), lo[1], xd(1));
    q_lo = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(q_lo, lo[2], xd(2)), lo[3], xd(3));
    p_hi = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(p_hi, hi[0], xd(4)), hi[1], xd(5));
    q_hi = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(q_hi, hi[2], xd(6)), hi[3], xd(7));
    p_lo = _mm256_add_epi32(p_lo, q_lo);
    p_hi = _mm256_add_epi32(p_hi, q_hi);
    *acc_lo =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(p_lo), _mm256_mul_ps(dw, _mm256_set1_ps(s.dx)), *acc_lo);
    *acc_hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p_hi), _mm256_mul_ps(dw, _mm256_set1_ps(s.dx16)),
                              *acc_hi);
    if constexpr (T::kMin) {
      *acc_lo = _mm256_fmadd_ps(mw, _mm256_set1_ps(s.sx), *acc_lo);
      *acc_hi = _mm256_fmadd_ps(_mm256_setzero_ps(), _mm256_set1_ps(s.sx), *acc_hi);
    }
  }
};

// Rows [r, r + n_rows) (n_rows <= 8) for tokens [j0, j0 + NT) of the pass. A group of fewer than
// 8 rows repeats its last row in the missing lanes and stores only its own rows (each lane's
// arithmetic depends on its row alone: batch invariance).
template <class T, int NT, bool kFull>
void Rows8Tokens(const MatMulTile& t, const ActTable& tab, int64_t r, int n_rows, int j0) {
  using Block = typename T::Block;
  using Act = typename T::Act;
  const uint8_t* w0 = t.w + static_cast<size_t>(r) * t.w_row_bytes;
  const size_t stride = t.w_row_bytes;
  const int last = n_rows - 1;
  __m256 acc_lo[NT], acc_hi[NT];
  for (int j = 0; j < NT; ++j) acc_lo[j] = acc_hi[j] = _mm256_setzero_ps();
  const Act* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const Act*>(t.xq + (j0 + j) * t.xq_stride);
  for (int64_t b = 0; b < tab.nb; ++b) {
    const uint8_t* blk = w0 + static_cast<size_t>(b) * sizeof(Block);
    PrefetchAhead<Block>(w0, stride, b);
    const RowsBlock<T> rb([&](int k) { return blk + (kFull ? k : std::min(k, last)) * stride; });
    const ActScalars* s = tab.e + b * tab.pt + j0;
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) rb.Accumulate(x[j][b], s[j], &acc_lo[j], &acc_hi[j]);
  }
  for (int j = 0; j < NT; ++j) {
    const __m256 sum = _mm256_add_ps(acc_lo[j], acc_hi[j]);
    float* y = t.y + (j0 + j) * t.y_stride + r;
    if (kFull) {
      _mm256_storeu_ps(y, sum);
    } else {
      alignas(32) float lanes[kRows];
      _mm256_store_ps(lanes, sum);
      for (int k = 0; k < n_rows; ++k) y[k] = lanes[k];
    }
  }
}

template <class T, int NT>
void RowsTokens(const MatMulTile& t, const ActTable& tab, int64_t r, int n_rows, int j0, int nt) {
  if constexpr (NT > 1) {
    if (nt < NT) return RowsTokens<T, NT - 1>(t, tab, r, n_rows, j0, nt);
  }
  if (n_rows == kRows) {
    Rows8Tokens<T, NT, true>(t, tab, r, n_rows, j0);
  } else {
    Rows8Tokens<T, NT, false>(t, tab, r, n_rows, j0);
  }
}

// Rows [r0, r1) for the pass's tokens: groups of 8 rows, each for the tokens kSubTileTokens at a
// time (the group's weights, 8 rows x n_in / 2 bytes, stay in L1 between the sub-tiles).
template <class T>
void RunPass(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r += kRows) {
    const int n_rows = static_cast<int>(std::min<int64_t>(kRows, r1 - r));
    for (int j0 = 0; j0 < t.nt; j0 += kSubTileTokens) {
      RowsTokens<T, kSubTileTokens>(t, tab, r, n_rows, j0, std::min(kSubTileTokens, t.nt - j0));
    }
  }
}

template <class T>
void Tile32Rows(const MatMulTile& t, int64_t r0, int64_t r1);

// Any t.nt <= kMatMulWideTileTokens.
template <class T>
void Tile32(const MatMulTile& t, int64_t r0, int64_t r1) {
  const size_t nb = static_cast<size_t>(t.n_in / 32);
  // Past the AVX2 row-block kernel's width its bits are those of other kernels: run them.
  if (static_cast<int64_t>(nb) > avx2::RowBlockMaxBlocks(T::kType))
    return avx2::MatMulTileKernel(T::kType)(t, r0, r1);
  // Tokens in the lanes (matmul_q4_wide_avx512.cc) for the tile's first tokens (all, or 8 of
  // 9..12), this file's kernel for the rest.
  const int n_wide = Tile32WideTokens(t);
  if (n_wide > 0) {
    MatMulTile w = t;
    w.nt = n_wide;
    MatMulTileKernel32Wide(T::kType)(w, r0, r1);
    if (n_wide == t.nt) return;
    MatMulTile rest = t;
    rest.nt = t.nt - n_wide;
    rest.xq = t.xq + n_wide * t.xq_stride;
    rest.y = t.y + n_wide * t.y_stride;
    rest.xtab = nullptr;
    return Tile32Rows<T>(rest, r0, r1);
  }
  return Tile32Rows<T>(t, r0, r1);
}

// Any t.nt <= kMatMulWideTileTokens through this file's kernel, in passes whose table fits
// kTableBytes.
template <class T>
void Tile32Rows(const MatMulTile& t, int64_t r0, int64_t r1) {
  const size_t nb = static_cast<size_t>(t.n_in / 32);
  const size_t token_bytes = nb * sizeof(ActScalars);
  if (token_bytes > kTableBytes) return avx2::MatMulTileKernel(T::kType)(t, r0, r1);
  ActScalars buf[kTableBytes / sizeof(ActScalars)];
  const int pass = static_cast<int>(std::min<size_t>(t.nt, kTableBytes / token_bytes));
  for (int j0 = 0; j0 < t.nt; j0 += pass) {
    MatMulTile s = t;
    s.nt = std::min(pass, t.nt - j0);
    s.xq = t.xq + j0 * t.xq_stride;
    s.y = t.y + j0 * t.y_stride;
    RunPass<T>(s, FillActTable<T>(s, buf), r0, r1);
  }
}

}  // namespace

MatMulTileFn MatMulTileKernel32(DType wtype) {
  switch (wtype) {
    case DType::kQ4_0:
      return &Tile32<Q4_0Rows>;
    case DType::kQ4_1:
      return &Tile32<Q4_1Rows>;
    case DType::kQ5_0:
      return &Tile32<Q5_0Rows>;
    case DType::kQ5_1:
      return &Tile32<Q5_1Rows>;
    default:
      return nullptr;
  }
}

}  // namespace gannet::cpu::avx512
