// AVX-512 (F/BW/VL) + VNNI matmul tiles for the 32-value row-block types with unsigned codes:
// Q4_0, Q5_0 (against Q8_0 activations) and Q4_1, Q5_1 (against Q8_1), file layout.
//
// The AVX2 kernels (matmul_avx2.cc, Rows4Tile) take 4 weight rows per step and reduce the four
// rows' products with a token's block so that row k's half-block sums land in lane k of each
// 128-bit half of a ymm ([r0 r1 r2 r3 | r0 r1 r2 r3], values 0..15 then 16..31). Here the stored
// codes (unsigned, 0..31) meet the activations in vpdpbusd, and the lanes are arranged so that no
// reduction tree is needed: the 4 rows' 16 packed bytes form one zmm [q0 | q1 | q2 | q3], whose
// nibbles are split into lo (values 0..15 of each row) and hi (16..31), and two dword permutes
// transpose them to
//   V01 = [lo T0 | hi T0 | lo T1 | hi T1],  V23 = [lo T2 | hi T2 | lo T3 | hi T3],
// where T_j holds dword j (4 codes) of rows 0..3. The activations are laid out to meet them once
// per (token, block) in a table: X01 = [x dword 0 | dword 4 | dword 1 | dword 5], each broadcast
// to its 128-bit lane, X23 likewise with dwords 2, 6, 3, 7. Then
//   P = dpbusd(dpbusd(-offset, V01, X01), V23, X23),  s = P[0..255] + P[256..511]
// is the AVX2 kernel's [r0 r1 r2 r3 | r0 r1 r2 r3] of exact half-block sums: 2 zmm dpbusd and 2
// ops per (4 rows, token, block), where AVX2 spends 4 maddubs and a 10-op int16 tree. The weight
// side (3 inserts, 3 nibble ops, 2 permutes per 4 rows and block) is shared by all tokens of a
// tile. Q4_0 / Q5_0 subtract the code offset (8 or 16) times the half block's activation sum,
// from the table, as the chain's start value; Q4_1 / Q5_1 add the block's min times the
// activation block's s after the FMA, in the lanes of the first half, as AVX2 does.
//
// Bits. The int32 sums are exact whatever the order, and the f32 steps per (row, half block) are
// the AVX2 kernel's: convert, multiply by dw * dx (rounded), FMA into the half's lane, (min term
// FMA), the two halves added at the end. So every row has the AVX2 target's bits, whatever the
// batch (MatMulConformance.Avx512BitsEqualAvx2 and the row-block edge tests check it).
// GCC 12's AVX-512 intrinsic headers: see matmul_kquant_avx512.cc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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

// [q(p) | q(p + s) | q(p + 2 s) | q(p + 3 s)]: 16 bytes from each of four rows.
static inline __m512i Gather4x16(const uint8_t* p, size_t s) {
  __m512i z = _mm512_castsi128_si512(Load128(p));
  z = _mm512_inserti32x4(z, Load128(p + s), 1);
  z = _mm512_inserti32x4(z, Load128(p + 2 * s), 2);
  return _mm512_inserti32x4(z, Load128(p + 3 * s), 3);
}

// The 4 rows' packed nibbles [q0 | q1 | q2 | q3] -> lo (low nibbles: values 0..15 of each row,
// in its 128-bit lane) and hi (high nibbles: values 16..31).
static inline void SplitNibbles(__m512i z, __m512i* lo, __m512i* hi) {
  const __m512i m = _mm512_set1_epi8(0x0F);
  *lo = _mm512_and_si512(z, m);
  *hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m);
}

// The 5th bits of four rows' Q5 blocks (qh at p + k * s, a little-endian u32 per row; bit i is
// value i's) as two byte masks over [row 0 | row 1 | row 2 | row 3] x 16 values: values 0..15
// (*lo) and 16..31 (*hi).
static inline void FifthBits(const uint8_t* p, size_t s, __mmask64* lo, __mmask64* hi) {
  uint32_t q[4];
  for (int k = 0; k < 4; ++k) std::memcpy(&q[k], p + k * s, 4);
  const uint64_t a = q[0] | uint64_t{q[1]} << 32, b = q[2] | uint64_t{q[3]} << 32;
  // a = [q0.lo q0.hi q1.lo q1.hi] in 16-bit pieces; lo takes the .lo pieces in row order.
  const auto pick = [](uint64_t v, int shift) {
    return ((v >> shift) & 0xFFFF) | (((v >> (32 + shift)) & 0xFFFF) << 16);
  };
  *lo = _cvtu64_mask64(pick(a, 0) | pick(b, 0) << 32);
  *hi = _cvtu64_mask64(pick(a, 16) | pick(b, 16) << 32);
}

// Per-type access to four rows' codes of one block: lo / hi as SplitNibbles describes (stored
// codes, unsigned). kOffsetShift: the codes' offset (8 or 16) as a shift; kMin: an additive
// block min (m * the activation block's s) instead of an offset.
struct Q4_0Rows {
  static constexpr DType kType = DType::kQ4_0;
  using Block = BlockQ4_0;
  using Act = BlockQ8_0;
  static constexpr bool kMin = false;
  static constexpr int kOffsetShift = 3;
  static void Codes(const uint8_t* b0, size_t s, __m512i* lo, __m512i* hi) {
    SplitNibbles(Gather4x16(b0 + offsetof(Block, qs), s), lo, hi);
  }
};
struct Q5_0Rows {
  static constexpr DType kType = DType::kQ5_0;
  using Block = BlockQ5_0;
  using Act = BlockQ8_0;
  static constexpr bool kMin = false;
  static constexpr int kOffsetShift = 4;
  static void Codes(const uint8_t* b0, size_t s, __m512i* lo, __m512i* hi) {
    SplitNibbles(Gather4x16(b0 + offsetof(Block, qs), s), lo, hi);
    __mmask64 mlo, mhi;
    FifthBits(b0 + offsetof(Block, qh), s, &mlo, &mhi);
    const __m512i bit = _mm512_set1_epi8(0x10);
    *lo = _mm512_mask_add_epi8(*lo, mlo, *lo, bit);
    *hi = _mm512_mask_add_epi8(*hi, mhi, *hi, bit);
  }
};
struct Q4_1Rows {
  static constexpr DType kType = DType::kQ4_1;
  using Block = BlockQ4_1;
  using Act = BlockQ8_1;
  static constexpr bool kMin = true;
  static constexpr int kOffsetShift = 0;
  static void Codes(const uint8_t* b0, size_t s, __m512i* lo, __m512i* hi) {
    SplitNibbles(Gather4x16(b0 + offsetof(Block, qs), s), lo, hi);
  }
};
struct Q5_1Rows {
  static constexpr DType kType = DType::kQ5_1;
  using Block = BlockQ5_1;
  using Act = BlockQ8_1;
  static constexpr bool kMin = true;
  static constexpr int kOffsetShift = 0;
  static void Codes(const uint8_t* b0, size_t s, __m512i* lo, __m512i* hi) {
    SplitNibbles(Gather4x16(b0 + offsetof(Block, qs), s), lo, hi);
    __mmask64 mlo, mhi;
    FifthBits(b0 + offsetof(Block, qh), s, &mlo, &mhi);
    const __m512i bit = _mm512_set1_epi8(0x10);
    *lo = _mm512_mask_add_epi8(*lo, mlo, *lo, bit);
    *hi = _mm512_mask_add_epi8(*hi, mhi, *hi, bit);
  }
};

// lo, hi -> V01, V23 (see the top of the file). Dword 4k + j of lo is row k's dword j.
static inline void Transpose(__m512i lo, __m512i hi, __m512i* v01, __m512i* v23) {
  const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  *v01 = _mm512_permutex2var_epi32(lo, i01, hi);
  *v23 = _mm512_permutex2var_epi32(lo, i23, hi);
}

// The activation table of one pass of pt tokens: entry e = b * pt + j for block b, token j (the
// tokens of a block side by side, so a token pair's dx8 / sx8 are one 64-byte load).
struct alignas(64) ActX {
  int8_t x01[64];  // X01, X23 (see the top of the file)
  int8_t x23[64];
};
struct ActTable {
  const ActX* x = nullptr;
  const int32_t* start = nullptr;  // [e][8]: -(offset) [lo x 4 | hi x 4] (Q4_0, Q5_0)
  const float* dx8 = nullptr;      // [e][8]: the activation block's d, 8 times
  const float* sx8 = nullptr;      // [e][8]: its s (Q4_1, Q5_1), 8 times
  int64_t nb = 0;
  int pt = 0;
};

template <class T>
constexpr size_t TableBytesPerBlock() {
  return sizeof(ActX) + 8 * sizeof(float) + 8 * sizeof(int32_t);  // start or sx8
}
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
  const __m512i i01 = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 1, 1, 1, 1, 5, 5, 5, 5);
  const __m512i i23 = _mm512_setr_epi32(2, 2, 2, 2, 6, 6, 6, 6, 3, 3, 3, 3, 7, 7, 7, 7);
  for (int j = 0; j < t.nt; ++j) {
    const Act* xb = reinterpret_cast<const Act*>(t.xq + j * t.xq_stride);
    for (int64_t b = 0; b < tab.nb; ++b) {
      const int64_t e = b * t.nt + j;
      const __m256i q = Load256(xb[b].qs);
      const __m512i qz = _mm512_castsi256_si512(q);
      _mm512_store_si512(x[e].x01, _mm512_permutexvar_epi32(i01, qz));
      _mm512_store_si512(x[e].x23, _mm512_permutexvar_epi32(i23, qz));
      _mm256_store_ps(dx8 + e * 8, _mm256_set1_ps(_cvtsh_ss(xb[b].d)));
      if constexpr (T::kMin) {
        _mm256_store_ps(extra + e * 8, _mm256_set1_ps(_cvtsh_ss(xb[b].s)));
      } else {
        __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
        s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4E));  // within each 128-bit half
        s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xB1));
        _mm256_store_si256(
            reinterpret_cast<__m256i*>(extra) + e,
            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s, T::kOffsetShift)));
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

// [d0 d1 d2 d3] as f32 from the f16 at p + k * s.
static inline __m128 Halves4(const uint8_t* p, size_t s) {
  uint16_t h[4];
  for (int k = 0; k < 4; ++k) std::memcpy(&h[k], p + k * s, 2);
  const uint64_t packed = h[0] | uint64_t{h[1]} << 16 | uint64_t{h[2]} << 32 | uint64_t{h[3]} << 48;
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(packed)));
}

// One (4 rows, token, block) product: the exact half-block sums [r0 r1 r2 r3 | r0 r1 r2 r3] as
// the two 256-bit halves of a zmm (to be added).
template <class T>
static inline __m512i BlockProducts(__m512i v01, __m512i v23, const ActTable& tab, int64_t e) {
  __m512i p = T::kMin ? _mm512_setzero_si512()
                      : _mm512_zextsi256_si512(
                            _mm256_load_si256(reinterpret_cast<const __m256i*>(tab.start + e * 8)));
  p = _mm512_dpbusd_epi32(p, v01, _mm512_load_si512(tab.x[e].x01));
  return _mm512_dpbusd_epi32(p, v23, _mm512_load_si512(tab.x[e].x23));
}

// Rows [r0, r1) in groups of four, the pass's tokens two at a time: a pair's accumulators are
// one zmm [token u: lo | hi, token u + 1: lo | hi]. NT: the pass's token count (1..16). A last
// group of fewer than 4 rows repeats its last row in the missing lanes and stores only its own
// rows (each lane's arithmetic depends on its row alone: batch invariance).
template <class T, int NT>
void Rows4Tile(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  using Block = typename T::Block;
  constexpr int kPairs = NT / 2;
  constexpr bool kOdd = NT % 2 != 0;
  const int64_t nb = tab.nb;
  for (int64_t r = r0; r < r1; r += 4) {
    const int n_rows = static_cast<int>(std::min<int64_t>(4, r1 - r));
    const uint8_t* w0 = t.w + static_cast<size_t>(r) * t.w_row_bytes;
    size_t stride = t.w_row_bytes;
    __m512 acc2[kPairs > 0 ? kPairs : 1];
    __m256 acc1 = _mm256_setzero_ps();
    for (int p = 0; p < kPairs; ++p) acc2[p] = _mm512_setzero_ps();
    alignas(64) Block part[4];  // a partial group's block, its last row repeated
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = w0 + static_cast<size_t>(b) * sizeof(Block);
      if (n_rows < 4) {
        for (int k = 0; k < 4; ++k)
          std::memcpy(&part[k], blk + std::min(k, n_rows - 1) * t.w_row_bytes, sizeof(Block));
        blk = reinterpret_cast<const uint8_t*>(part);
        stride = sizeof(Block);
      }
      __m512i lo, hi, v01, v23;
      T::Codes(blk, stride, &lo, &hi);
      Transpose(lo, hi, &v01, &v23);
      const __m128 dw4 = Halves4(blk + offsetof(Block, d), stride);
      const __m256 dw = _mm256_set_m128(dw4, dw4);
      const __m512 dw2 = _mm512_insertf32x8(_mm512_castps256_ps512(dw), dw, 1);
      __m256 mw = _mm256_setzero_ps();
      if constexpr (T::kMin)
        mw = _mm256_set_m128(_mm_setzero_ps(), Halves4(blk + offsetof(Block, m), stride));
      const __m512 mw2 = _mm512_insertf32x8(_mm512_castps256_ps512(mw), mw, 1);
      const int64_t e0 = b * NT;
      for (int p = 0; p < kPairs; ++p) {
        const __m512i pa = BlockProducts<T>(v01, v23, tab, e0 + 2 * p);
        const __m512i pb = BlockProducts<T>(v01, v23, tab, e0 + 2 * p + 1);
        const __m512i s = _mm512_add_epi32(_mm512_shuffle_i64x2(pa, pb, 0x44),
                                           _mm512_shuffle_i64x2(pa, pb, 0xEE));
        const __m512 scale = _mm512_mul_ps(dw2, _mm512_load_ps(tab.dx8 + (e0 + 2 * p) * 8));
        acc2[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc2[p]);
        if constexpr (T::kMin)
          acc2[p] = _mm512_fmadd_ps(mw2, _mm512_load_ps(tab.sx8 + (e0 + 2 * p) * 8), acc2[p]);
      }
      if constexpr (kOdd) {
        const int64_t e = e0 + NT - 1;
        const __m512i pz = BlockProducts<T>(v01, v23, tab, e);
        const __m256i s =
            _mm256_add_epi32(_mm512_castsi512_si256(pz), _mm512_extracti64x4_epi64(pz, 1));
        const __m256 scale = _mm256_mul_ps(dw, _mm256_load_ps(tab.dx8 + e * 8));
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc1);
        if constexpr (T::kMin) acc1 = _mm256_fmadd_ps(mw, _mm256_load_ps(tab.sx8 + e * 8), acc1);
      }
    }
    const auto store = [&](int j, __m256 a) {
      const __m128 sum = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
      float* y = t.y + j * t.y_stride + r;
      if (n_rows == 4) {
        _mm_storeu_ps(y, sum);
      } else {
        alignas(16) float lanes[4];
        _mm_store_ps(lanes, sum);
        for (int k = 0; k < n_rows; ++k) y[k] = lanes[k];
      }
    };
    for (int p = 0; p < kPairs; ++p) {
      store(2 * p, _mm512_castps512_ps256(acc2[p]));
      store(2 * p + 1, _mm512_extractf32x8_ps(acc2[p], 1));
    }
    if constexpr (kOdd) store(NT - 1, acc1);
  }
}

template <class T, int NT>
void RunPass(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  if constexpr (NT > 1) {
    if (t.nt < NT) return RunPass<T, NT - 1>(t, tab, r0, r1);
  }
  Rows4Tile<T, NT>(t, tab, r0, r1);
}

// Any t.nt <= kMatMulWideTileTokens, in passes whose table fits kTableBytes.
template <class T>
void Tile32(const MatMulTile& t, int64_t r0, int64_t r1) {
  const size_t token_bytes = static_cast<size_t>(t.n_in / 32) * TableBytesPerBlock<T>();
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
