// AVX-512 (VL) + VNNI matmul tiles for the 32-value row-block types with 4-bit unsigned codes,
// Q4_0 (against Q8_0 activations) and Q4_1 (against Q8_1), file layout.
//
// The AVX2 kernels (matmul_avx2.cc, Rows4Tile) take 4 weight rows per step and reduce the four
// rows' products with a token's block so that row k's half-block sums land in lane k of each
// 128-bit half of a ymm ([r0 r1 r2 r3 | r0 r1 r2 r3], values 0..15 then 16..31). Here the lanes
// are arranged before the products instead of after them, so that vpdpbusd (unsigned codes times
// signed activations, 4 products into an int32 lane) leaves that layout directly:
//   T_j = [row 0 | row 1 | row 2 | row 3] dword j of the 16 packed bytes (one vpermt2d from the
//         rows' [q0 | q1] and [q2 | q3]),
//   V_j = [T_j & 0x0F | T_j & 0xF0]  (the low nibbles are values 4j..4j+3 of each row, the high
//         nibbles values 16+4j..16+4j+3, kept in place: 16 times the code),
//   X_j = [x dword j | x dword 4 + j], each broadcast to its 4 lanes (a per-pass table),
//   s = dpbusd(dpbusd(dpbusd(dpbusd(start, V_0, X_0), V_1, X_1), V_2, X_2), V_3, X_3),
// where start = -(offset * the half block's activation sum) for Q4_0 (0 for Q4_1): s is
// [r0 r1 r2 r3 | 16 r0 16 r1 16 r2 16 r3] of the exact half-block sums. Per (4 rows, block):
// 2 inserts, 4 permutes and 4 ands, shared by all tokens of a tile; per token 4 ymm vpdpbusd
// where AVX2 spends 4 maddubs and a 10-op int16 tree. (On Zen 4, 512-bit vectors bought nothing
// here: every zmm shuffle costs a cycle, and the zmm variants need a cross-lane reduction per
// token.)
//
// Bits. The int32 sums are exact whatever the order. The high half's sum arrives times 16, and its
// scale is dw * (dx / 16): dx / 16 is exact (an f16 value times 2^-4 stays a normal f32), so is
// the f32 product dw * dx / 16 = fl(dw * dx) / 16 (|dw dx| >= 2^-48 or 0: no f32 underflow), and
// 16 s times fl(dw dx) / 16 is the same real number as s times fl(dw dx): the FMA rounds the same
// value. So per (row, half block) the f32 steps are the AVX2 kernel's (convert, scale dw * dx,
// FMA into the half's lane; Q4_1: the min term's FMA into the first half's lanes; the halves
// added at the end), and every row has the AVX2 target's bits whatever the batch
// (MatMulConformance.Avx512BitsEqualAvx2 and the row-block edge tests check it).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx512 {
namespace {

static inline __m128i Load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
static inline __m256i Load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// V_0..V_3 (see the top of the file) from the packed nibbles at p + k * s, k = 0..3.
static inline void TransposedNibbles(const uint8_t* p, size_t s, __m256i v[4]) {
  const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(Load128(p)), Load128(p + s), 1);
  const __m256i b =
      _mm256_inserti128_si256(_mm256_castsi128_si256(Load128(p + 2 * s)), Load128(p + 3 * s), 1);
  const __m256i m = _mm256_set_m128i(_mm_set1_epi8(static_cast<char>(0xF0)), _mm_set1_epi8(0x0F));
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m256i idx = _mm256_setr_epi32(j, 4 + j, 8 + j, 12 + j, j, 4 + j, 8 + j, 12 + j);
    v[j] = _mm256_and_si256(_mm256_permutex2var_epi32(a, idx, b), m);
  }
}

// Per-type layout. kOffsetShift: log2 of the code offset (Q4_0's 8); kMin: an additive block
// min (m * the activation block's s) instead of an offset.
struct Q4_0Rows {
  static constexpr DType kType = DType::kQ4_0;
  using Block = BlockQ4_0;
  using Act = BlockQ8_0;
  static constexpr bool kMin = false;
  static constexpr int kOffsetShift = 3;
};
struct Q4_1Rows {
  static constexpr DType kType = DType::kQ4_1;
  using Block = BlockQ4_1;
  using Act = BlockQ8_1;
  static constexpr bool kMin = true;
  static constexpr int kOffsetShift = 0;
};

// The activation table of one pass of pt tokens, entry e = b * pt + j for block b and token j.
struct alignas(64) ActX {
  int8_t x[4][32];  // X_0..X_3
};
struct ActTable {
  const ActX* x = nullptr;
  const int32_t* start = nullptr;  // [e][8]: the dpbusd chain's start (Q4_0; see the top)
  const float* dx8 = nullptr;      // [e][8]: [dx x 4 | dx / 16 x 4]
  const float* sx8 = nullptr;      // [e][8]: the activation block's s, 8 times (Q4_1)
  int64_t nb = 0;
  int pt = 0;
};

constexpr size_t kTableBytesPerBlock = sizeof(ActX) + 16 * sizeof(float);
// The table lives on the stack of the calling thread; a width whose one-token table does not
// fit (beyond 16k inputs) runs the AVX2 kernel (the same bits).
constexpr size_t kTableBytes = 96 * 1024;

template <class T>
ActTable FillActTable(const MatMulTile& t, unsigned char* buf) {
  using Act = typename T::Act;
  ActTable tab;
  tab.nb = t.n_in / 32;
  tab.pt = t.nt;
  const int64_t n = tab.nb * t.nt;
  auto* x = reinterpret_cast<ActX*>(buf);
  auto* dx8 = reinterpret_cast<float*>(buf + n * sizeof(ActX));
  auto* extra = reinterpret_cast<float*>(buf + n * (sizeof(ActX) + 8 * sizeof(float)));
  const __m256 sixteenth = _mm256_setr_ps(1, 1, 1, 1, 0.0625f, 0.0625f, 0.0625f, 0.0625f);
  for (int j = 0; j < t.nt; ++j) {
    const Act* xb = reinterpret_cast<const Act*>(t.xq + j * t.xq_stride);
    for (int64_t b = 0; b < tab.nb; ++b) {
      const int64_t e = b * t.nt + j;
      const __m256i q = Load256(xb[b].qs);
      for (int i = 0; i < 4; ++i) {
        const __m256i idx = _mm256_setr_epi32(i, i, i, i, 4 + i, 4 + i, 4 + i, 4 + i);
        _mm256_store_si256(reinterpret_cast<__m256i*>(x[e].x[i]),
                           _mm256_permutevar8x32_epi32(q, idx));
      }
      _mm256_store_ps(dx8 + e * 8, _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(xb[b].d)), sixteenth));
      if constexpr (T::kMin) {
        _mm256_store_ps(extra + e * 8, _mm256_set1_ps(_cvtsh_ss(xb[b].s)));
      } else {
        __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
        s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4E));  // within each 128-bit half
        s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xB1));
        // The offset times the half's sum; the high half's times 16, as its codes.
        s = _mm256_sllv_epi32(
            s, _mm256_setr_epi32(T::kOffsetShift, T::kOffsetShift, T::kOffsetShift, T::kOffsetShift,
                                 T::kOffsetShift + 4, T::kOffsetShift + 4, T::kOffsetShift + 4,
                                 T::kOffsetShift + 4));
        _mm256_store_si256(reinterpret_cast<__m256i*>(extra) + e,
                           _mm256_sub_epi32(_mm256_setzero_si256(), s));
      }
    }
  }
  tab.x = x;
  tab.dx8 = dx8;
  if constexpr (T::kMin) {
    tab.sx8 = extra;
  } else {
    tab.start = reinterpret_cast<const int32_t*>(extra);
  }
  return tab;
}

// [d0 d1 d2 d3 | d0 d1 d2 d3] as f32 from the f16 at p + k * s.
static inline __m256 Halves4x2(const uint8_t* p, size_t s) {
  // Scalar loads and shifts: four narrow stores read back as one u64 would miss store
  // forwarding (measured 3x slower when the compiler kept such an array in memory).
  const auto h = [&](int k) {
    uint16_t v;
    std::memcpy(&v, p + k * s, 2);
    return uint64_t{v};
  };
  const uint64_t packed = h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48;
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(packed)));
  return _mm256_set_m128(f, f);
}

// The four rows' weights of one block, ready for any number of tokens.
template <class T>
struct RowsBlock {
  __m256i v[4];
  __m256 dw;  // [d0 d1 d2 d3 | d0 d1 d2 d3]
  __m256 mw;  // [m0 m1 m2 m3 | 0 0 0 0] (Q4_1)

  RowsBlock(const uint8_t* blk, size_t s) {
    using Block = typename T::Block;
    TransposedNibbles(blk + offsetof(Block, qs), s, v);
    dw = Halves4x2(blk + offsetof(Block, d), s);
    if constexpr (T::kMin) {
      mw = _mm256_blend_ps(Halves4x2(blk + offsetof(Block, m), s), _mm256_setzero_ps(), 0xF0);
    }
  }

  // acc += this block's products with table entry e (one token).
  __m256 Accumulate(const ActTable& tab, int64_t e, __m256 acc) const {
    __m256i p = T::kMin ? _mm256_setzero_si256()
                        : _mm256_load_si256(reinterpret_cast<const __m256i*>(tab.start + e * 8));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j)
      p = _mm256_dpbusd_epi32(p, v[j],
                              _mm256_load_si256(reinterpret_cast<const __m256i*>(tab.x[e].x[j])));
    const __m256 scale = _mm256_mul_ps(dw, _mm256_load_ps(tab.dx8 + e * 8));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc);
    if constexpr (T::kMin) acc = _mm256_fmadd_ps(mw, _mm256_load_ps(tab.sx8 + e * 8), acc);
    return acc;
  }
};

// Row k's result: lane k plus lane 4 + k of acc.
static inline void StoreRows(__m256 acc, float* y, int n_rows) {
  const __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  if (n_rows == 4) {
    _mm_storeu_ps(y, sum);
  } else {
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, sum);
    for (int k = 0; k < n_rows; ++k) y[k] = lanes[k];
  }
}

// Rows [r0, r1) in groups of four for the pass's NT tokens (1..16). A last group of fewer than
// 4 rows repeats its last row in the missing lanes and stores only its own rows (each lane's
// arithmetic depends on its row alone: batch invariance).
template <class T, int NT>
void Rows4Tile(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  using Block = typename T::Block;
  const int64_t nb = tab.nb;
  for (int64_t r = r0; r < r1; r += 4) {
    const int n_rows = static_cast<int>(std::min<int64_t>(4, r1 - r));
    const uint8_t* w0 = t.w + static_cast<size_t>(r) * t.w_row_bytes;
    size_t stride = t.w_row_bytes;
    __m256 acc[NT];
    for (int j = 0; j < NT; ++j) acc[j] = _mm256_setzero_ps();
    alignas(64) Block part[4];  // a partial group's block, its last row repeated
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = w0 + static_cast<size_t>(b) * sizeof(Block);
      if (n_rows < 4) {
        for (int k = 0; k < 4; ++k)
          std::memcpy(&part[k], blk + std::min(k, n_rows - 1) * t.w_row_bytes, sizeof(Block));
        blk = reinterpret_cast<const uint8_t*>(part);
        stride = sizeof(Block);
      }
      const RowsBlock<T> rb(blk, stride);
#pragma GCC unroll 16
      for (int j = 0; j < NT; ++j) acc[j] = rb.Accumulate(tab, b * NT + j, acc[j]);
    }
    for (int j = 0; j < NT; ++j) StoreRows(acc[j], t.y + j * t.y_stride + r, n_rows);
  }
}

// One token (decode): kGroups groups of 4 rows per step, so that the out-of-order window holds
// independent work of several groups (a block's chain, load to FMA, is long). Per row the
// arithmetic of Rows4Tile<T, 1>, so a row has the same bits on both paths. The rows that do not
// fill kGroups whole groups go to Rows4Tile<T, 1>.
constexpr int kDecodeGroups = 2;

template <class T>
void Rows4Decode(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  using Block = typename T::Block;
  const int64_t nb = tab.nb;
  const size_t stride = t.w_row_bytes;
  int64_t r = r0;
  for (; r + 4 * kDecodeGroups <= r1; r += 4 * kDecodeGroups) {
    const uint8_t* w0 = t.w + static_cast<size_t>(r) * stride;
    __m256 acc[kDecodeGroups];
    for (int g = 0; g < kDecodeGroups; ++g) acc[g] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
#pragma GCC unroll 4
      for (int g = 0; g < kDecodeGroups; ++g) {
        const RowsBlock<T> rb(w0 + 4 * g * stride + static_cast<size_t>(b) * sizeof(Block), stride);
        acc[g] = rb.Accumulate(tab, b, acc[g]);
      }
    }
    for (int g = 0; g < kDecodeGroups; ++g) StoreRows(acc[g], t.y + r + 4 * g, 4);
  }
  if (r < r1) Rows4Tile<T, 1>(t, tab, r, r1);
}

template <class T, int NT>
void RunPass(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  if constexpr (NT > 1) {
    if (t.nt < NT) return RunPass<T, NT - 1>(t, tab, r0, r1);
    Rows4Tile<T, NT>(t, tab, r0, r1);
  } else {
    Rows4Decode<T>(t, tab, r0, r1);
  }
}

// Any t.nt <= kMatMulWideTileTokens, in passes whose table fits kTableBytes.
template <class T>
void Tile32(const MatMulTile& t, int64_t r0, int64_t r1) {
  const size_t token_bytes = static_cast<size_t>(t.n_in / 32) * kTableBytesPerBlock;
  if (token_bytes > kTableBytes) return avx2::MatMulTileKernel(T::kType)(t, r0, r1);
  alignas(64) unsigned char buf[kTableBytes];
  const int pass = static_cast<int>(std::min<size_t>(t.nt, kTableBytes / token_bytes));
  for (int j0 = 0; j0 < t.nt; j0 += pass) {
    MatMulTile s = t;
    s.nt = std::min(pass, t.nt - j0);
    s.xq = t.xq + j0 * t.xq_stride;
    s.y = t.y + j0 * t.y_stride;
    const ActTable tab = FillActTable<T>(s, buf);
    RunPass<T, kMatMulWideTileTokens>(s, tab, r0, r1);
  }
}

}  // namespace

MatMulTileFn MatMulTileKernel32(DType wtype) {
  switch (wtype) {
    case DType::kQ4_0:
      return &Tile32<Q4_0Rows>;
    default:
      return nullptr;
  }
}

}  // namespace gannet::cpu::avx512
