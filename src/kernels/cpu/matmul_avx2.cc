// AVX2 + FMA + F16C matmul tiles for the 32-value block types (integer dot products against
// Q8_0 / Q8_1 activations) and for f32 / f16 / bf16 weights (f32 FMA against f32 activations).
// See avx2_common.h for the rule that keeps this file's code out of baseline callers.
#include <algorithm>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx2 {
namespace {

// How the 4-row prefill kernel (Rows4Tile below) forms a block's integer dot products.
enum class Rows4Mode {
  kNone,            // no 4-row kernel: the 1-row tile serves every token count
  kSignedMadd,      // |code| <= 128: sign trick, one madd per (row, token) (Q8_0)
  kUnsignedOffset,  // stored codes 0..kMaxCode <= 31 as they are, minus offset * sum(x) per block
  kUnsignedMin,  // the same codes, plus the block's min times the activation block's s (Q4_1, Q5_1)
};

// The row-block kernels multiply these modes' stored codes as they are (vpmaddubsw's unsigned
// operand) and sum four rows' products in int16.
template <class T>
constexpr bool kUnsignedRows4 =
    T::kRows4 == Rows4Mode::kUnsignedOffset || T::kRows4 == Rows4Mode::kUnsignedMin;

// A Q5_0 / Q5_1 block's stored codes (nibble | 5th bit << 4) without ExpandBits32's compare and
// mask: each byte takes its qh byte from [qh, qh << 4] so that its own bit sits in bits 4..7;
// masked to that bit, min(., 16) is 0 or 16. One vector op fewer per row (measured ~1% on
// one-token Q5_0; a vpsllvd expansion was slower on Zen 1).
static inline __m256i Q5StoredCodes(const uint8_t* qh_bytes, const uint8_t* qs) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  const __m256i src = _mm256_set1_epi64x(static_cast<long long>(qh | uint64_t{qh << 4} << 32));
  // Byte 8m + i (value 8m + i) reads qh byte m, from the shifted copy (index 4 + m) if i < 4.
  const __m256i pick = _mm256_setr_epi64x(0x0000000004040404, 0x0101010105050505,
                                          0x0202020206060606, 0x0303030307070707);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201080402010ull));
  const __m256i high = _mm256_min_epu8(_mm256_and_si256(_mm256_shuffle_epi8(src, pick), bit),
                                       _mm256_set1_epi8(0x10));
  return _mm256_or_si256(UnpackNibbles16(qs), high);
}

// Per-type access to a weight block's 32 codes. kSigned: Codes() are centred int8 (the scale
// alone dequantizes them); otherwise UnsignedCodes() are the stored codes with an additive min
// (m * activation sum).
struct Q4_0Codes {
  using Block = BlockQ4_0;
  using Act = BlockQ8_0;
  static constexpr bool kSigned = true;
  static constexpr Rows4Mode kRows4 = Rows4Mode::kUnsignedOffset;
  static __m256i Codes(const Block& b) {
    return _mm256_sub_epi8(UnpackNibbles16(b.qs), _mm256_set1_epi8(8));
  }
  // The stored codes (value + kOffset) as they are, for the row-block kernels.
  static constexpr int kOffsetShift = 3;  // offset 8
  static constexpr int kMaxCode = 15;
  static __m256i UnsignedCodes(const Block& b) { return UnpackNibbles16(b.qs); }
};
struct Q5_0Codes {
  using Block = BlockQ5_0;
  using Act = BlockQ8_0;
  static constexpr bool kSigned = true;
  static constexpr Rows4Mode kRows4 = Rows4Mode::kUnsignedOffset;
  static __m256i Codes(const Block& b) {
    // nibble | bit << 4, minus 16: where the 5th bit is clear, nibble - 16 == nibble | 0xF0.
    const __m256i high_clear =
        _mm256_andnot_si256(ExpandBits32(b.qh), _mm256_set1_epi8(static_cast<char>(0xF0)));
    return _mm256_or_si256(UnpackNibbles16(b.qs), high_clear);
  }
  static constexpr int kOffsetShift = 4;  // offset 16
  static constexpr int kMaxCode = 31;
  static __m256i UnsignedCodes(const Block& b) { return Q5StoredCodes(b.qh, b.qs); }
};
struct Q8_0Codes {
  using Block = BlockQ8_0;
  using Act = BlockQ8_0;
  static constexpr bool kSigned = true;
  static constexpr Rows4Mode kRows4 = Rows4Mode::kSignedMadd;
  static __m256i Codes(const Block& b) { return LoadU256(b.qs); }
};
struct Q4_1Codes {
  using Block = BlockQ4_1;
  using Act = BlockQ8_1;
  static constexpr bool kSigned = false;
  static constexpr Rows4Mode kRows4 = Rows4Mode::kUnsignedMin;
  static constexpr int kMaxCode = 15;
  static __m256i UnsignedCodes(const Block& b) { return UnpackNibbles16(b.qs); }
};
struct Q5_1Codes {
  using Block = BlockQ5_1;
  using Act = BlockQ8_1;
  static constexpr bool kSigned = false;
  static constexpr Rows4Mode kRows4 = Rows4Mode::kUnsignedMin;
  static constexpr int kMaxCode = 31;
  static __m256i UnsignedCodes(const Block& b) { return Q5StoredCodes(b.qh, b.qs); }
};

template <class T, int NT>
void Tile32(const MatMulTile& t, int64_t r0, int64_t r1) {
  using Block = typename T::Block;
  using Act = typename T::Act;
  // One accumulator per token whatever NT is: a token's sum must not depend on its tile.
  constexpr int kAcc = 1;
  const int64_t nb = t.n_in / 32;
  const Act* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const Act*>(t.xq + j * t.xq_stride);
  for (int64_t r = r0; r < r1; ++r) {
    const Block* w = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    __m256 acc[NT * kAcc];
    float min_acc[NT];
    for (int j = 0; j < NT * kAcc; ++j) acc[j] = _mm256_setzero_ps();
    for (int j = 0; j < NT; ++j) min_acc[j] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const float dw = HalfToFloat(w[b].d);
      const int slot = kAcc == 2 ? static_cast<int>(b & 1) : 0;
      if constexpr (T::kSigned) {
        const __m256i q = T::Codes(w[b]);
        const __m256i q_abs = _mm256_sign_epi8(q, q);
        for (int j = 0; j < NT; ++j) {
          const __m256i s = DotI8(q_abs, q, LoadU256(x[j][b].qs));
          const __m256 scale = _mm256_set1_ps(dw * HalfToFloat(x[j][b].d));
          acc[j * kAcc + slot] =
              _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[j * kAcc + slot]);
        }
      } else {
        const __m256i q = T::UnsignedCodes(w[b]);
        const float mw = HalfToFloat(w[b].m);
        for (int j = 0; j < NT; ++j) {
          const __m256i s = DotU8(q, LoadU256(x[j][b].qs));
          const __m256 scale = _mm256_set1_ps(dw * HalfToFloat(x[j][b].d));
          acc[j * kAcc + slot] =
              _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[j * kAcc + slot]);
          min_acc[j] += mw * HalfToFloat(x[j][b].s);
        }
      }
    }
    for (int j = 0; j < NT; ++j) {
      __m256 a = acc[j * kAcc];
      if (kAcc == 2) a = _mm256_add_ps(a, acc[j * kAcc + 1]);
      t.y[j * t.y_stride + r] = HorizontalSum(a) + min_acc[j];
    }
  }
}

// Float weights: 8 values per step as f32.
struct F32Weights {
  using Elem = float;
  static __m256 Load(const float* p) { return _mm256_loadu_ps(p); }
  static float One(const float* p) { return *p; }
};
struct F16Weights {
  using Elem = uint16_t;
  static __m256 Load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float One(const uint16_t* p) { return HalfToFloat(*p); }
};
struct BF16Weights {
  using Elem = uint16_t;
  static __m256 Load(const uint16_t* p) {
    const __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float One(const uint16_t* p) {
    const uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
};

template <class T, int NT>
void TileFloat(const MatMulTile& t, int64_t r0, int64_t r1) {
  using Elem = typename T::Elem;
  const int64_t n = t.n_in;
  const float* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const float*>(t.xq + j * t.xq_stride);
  for (int64_t r = r0; r < r1; ++r) {
    const Elem* w = reinterpret_cast<const Elem*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    __m256 acc0[NT], acc1[NT];
    for (int j = 0; j < NT; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256 w0 = T::Load(w + i), w1 = T::Load(w + i + 8);
      for (int j = 0; j < NT; ++j) {
        acc0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[j] + i), acc0[j]);
        acc1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[j] + i + 8), acc1[j]);
      }
    }
    for (; i + 8 <= n; i += 8) {
      const __m256 w0 = T::Load(w + i);
      for (int j = 0; j < NT; ++j)
        acc0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[j] + i), acc0[j]);
    }
    for (int j = 0; j < NT; ++j) {
      float sum = HorizontalSum(_mm256_add_ps(acc0[j], acc1[j]));
      for (int64_t k = i; k < n; ++k) sum += T::One(w + k) * x[j][k];
      t.y[j * t.y_stride + r] = sum;
    }
  }
}

// How many 4-row groups ahead the row-block kernels prefetch. Measured on the 262144 x 640 Q8_0
// output matrix of Gemma 3 270M (one thread, one token): 40 ms without, 20 ms at 1 or 2 groups
// ahead.
constexpr int64_t kPrefetchGroups = 2;

// Prefill: 4 weight rows x a tile of tokens per step. The 1-row tile spends a maddubs, a madd,
// a convert, a scale broadcast and an FMA per (row, token, block), and a horizontal sum per row;
// on cores whose vector integer multiplies issue on a single pipe (Zen 1) that bounds it. Here
// the four rows' products with one token's block are reduced together by unpack/add trees (no
// multiplier) so that row k's block sum lands in lane k of each 128-bit half (low half: block
// values 0..15, high half: 16..31); one convert and one FMA with the vector scale [dw_k * dx]
// then serve four rows. Q4_0 / Q5_0 multiply their stored (unsigned) codes as they are and
// subtract offset * sum(x) per half block afterwards, so they need no sign operations and their
// int16 products are small enough to be summed in int16 before one widening madd. Q4_1 / Q5_1
// do the same with no offset, and add their min term (row min times the activation block's s)
// with one more FMA into the first half's lanes.
//
// A tile of up to kMatMulWideTileTokens tokens is taken in passes: each pass precomputes its
// tokens' block scales (f32) and offset sums into a stack table read by every row group, and
// unpacks each weight block once for all of the pass's tokens. Up to 4 tokens the accumulators
// stay in registers; wider passes keep them in a small stack array.
constexpr size_t kActTableBytes = 64 * 1024;

// Per pass: offset (kUnsignedOffset only) [nt][nb] x [lo x 4 | hi x 4] int32, or s (the
// activation block's d * sum(codes), kUnsignedMin only) [nt][nb] f32; then dx [nt][nb].
struct ActTable {
  const int32_t* offset = nullptr;
  const float* sx = nullptr;
  const float* dx = nullptr;
  int64_t nb = 0;
};

template <class T>
constexpr size_t ActTableBytesPerBlock() {
  return sizeof(float) + (T::kRows4 == Rows4Mode::kUnsignedOffset ? 8 * sizeof(int32_t)
                          : T::kRows4 == Rows4Mode::kUnsignedMin  ? sizeof(float)
                                                                  : 0);
}

// Four int16 product vectors (one per row) -> int32 [r0 r1 r2 r3 | r0 r1 r2 r3] (see above).
// The first two levels add in int16, four elements of one vector.
// REQUIRES: the sum of any four elements of one vector fits in int16.
static inline __m256i SumRows4I16(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
  // Dwords stay whole (two int16 of one row): [p0.d0+d2, p1.d0+d2, p0.d1+d3, p1.d1+d3].
  const __m256i a = _mm256_add_epi16(_mm256_unpacklo_epi32(p0, p1), _mm256_unpackhi_epi32(p0, p1));
  const __m256i c = _mm256_add_epi16(_mm256_unpacklo_epi32(p2, p3), _mm256_unpackhi_epi32(p2, p3));
  // Dwords [p0, p1, p2, p3], each two int16 sums of four elements; madd adds the two in int32.
  const __m256i v = _mm256_add_epi16(_mm256_unpacklo_epi64(a, c), _mm256_unpackhi_epi64(a, c));
  return _mm256_madd_epi16(v, _mm256_set1_epi16(1));
}

// The same reduction of four int32 vectors (hadd measured as fast as the unpack/add tree here).
static inline __m256i SumRows4I32(__m256i s0, __m256i s1, __m256i s2, __m256i s3) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(s0, s1), _mm256_hadd_epi32(s2, s3));
}

// Four f16 values as f32 [h0 h1 h2 h3].
static inline __m128 HalfToFloat4(uint16_t h0, uint16_t h1, uint16_t h2, uint16_t h3) {
  const uint64_t packed = h0 | uint64_t{h1} << 16 | uint64_t{h2} << 32 | uint64_t{h3} << 48;
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(packed)));
}

// [m0 m1 m2 m3 | 0 0 0 0] as f32 from four f16 mins: a block's min term is added once, in the
// lanes of its first half.
static inline __m256 RowMins4Low(uint16_t m0, uint16_t m1, uint16_t m2, uint16_t m3) {
  return _mm256_set_m128(_mm_setzero_ps(), HalfToFloat4(m0, m1, m2, m3));
}

// [d0 d1 d2 d3 | d0 d1 d2 d3] as f32 from four f16 scales.
static inline __m256 RowScales4(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3) {
  const __m128 f = HalfToFloat4(d0, d1, d2, d3);
  return _mm256_set_m128(f, f);
}

// Fills `buf` for the tile's t.nt tokens; REQUIRES t.nt * nb * ActTableBytesPerBlock<T>() <= size.
template <class T>
ActTable FillActTable(const MatMulTile& t, unsigned char* buf) {
  using Act = typename T::Act;
  ActTable tab;
  tab.nb = t.n_in / 32;
  const int64_t n = t.nt * tab.nb;
  int32_t* offset = reinterpret_cast<int32_t*>(buf);
  float* dx = reinterpret_cast<float*>(buf + (ActTableBytesPerBlock<T>() - sizeof(float)) * n);
  float* sx = reinterpret_cast<float*>(buf);  // kUnsignedMin only
  for (int j = 0; j < t.nt; ++j) {
    const Act* x = reinterpret_cast<const Act*>(t.xq + j * t.xq_stride);
    for (int64_t b = 0; b < tab.nb; ++b) {
      dx[j * tab.nb + b] = HalfToFloat(x[b].d);
      if constexpr (T::kRows4 == Rows4Mode::kUnsignedMin) sx[j * tab.nb + b] = HalfToFloat(x[b].s);
      if constexpr (T::kRows4 == Rows4Mode::kUnsignedOffset) {
        const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), LoadU256(x[b].qs));
        __m256i s = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
        s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4E));  // within each 128-bit half
        s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xB1));
        s = _mm256_slli_epi32(s, T::kOffsetShift);
        _mm256_store_si256(reinterpret_cast<__m256i*>(offset + (j * tab.nb + b) * 8), s);
      }
    }
  }
  tab.offset = offset;
  if constexpr (T::kRows4 == Rows4Mode::kUnsignedMin) tab.sx = sx;
  tab.dx = dx;
  return tab;
}

// acc[u] += the block-b products of four rows (codes q, or |q| and q for kSignedMadd; row scales
// dw; kUnsignedMin: row mins mw, RowMins4Low) with tokens j0 .. j0 + U - 1, one lane per row as
// described above.
template <class T, int U>
static inline void AccumulateTokens(const __m256i* q, const __m256i* q_abs, __m256 dw, __m256 mw,
                                    const MatMulTile& t, const ActTable& tab, int j0, int64_t b,
                                    __m256* acc) {
  using Act = typename T::Act;
  // Written phase by phase across the U tokens: each token's chain is long (two multiplies,
  // the reduction tree, a convert and an FMA), and the out-of-order window holds little more
  // than one token's ops, so the tokens' independent ops are interleaved here.
  __m256i s[U];
  if constexpr (kUnsignedRows4<T>) {
    __m256i a[U], c[U];
    for (int u = 0; u < U; ++u) {
      const __m256i xq =
          LoadU256(reinterpret_cast<const Act*>(t.xq + (j0 + u) * t.xq_stride)[b].qs);
      const __m256i p0 = _mm256_maddubs_epi16(q[0], xq), p1 = _mm256_maddubs_epi16(q[1], xq);
      a[u] = _mm256_add_epi16(_mm256_unpacklo_epi32(p0, p1), _mm256_unpackhi_epi32(p0, p1));
      const __m256i p2 = _mm256_maddubs_epi16(q[2], xq), p3 = _mm256_maddubs_epi16(q[3], xq);
      c[u] = _mm256_add_epi16(_mm256_unpacklo_epi32(p2, p3), _mm256_unpackhi_epi32(p2, p3));
    }
    for (int u = 0; u < U; ++u) {
      const __m256i v =
          _mm256_add_epi16(_mm256_unpacklo_epi64(a[u], c[u]), _mm256_unpackhi_epi64(a[u], c[u]));
      s[u] = _mm256_madd_epi16(v, _mm256_set1_epi16(1));
    }
    if constexpr (T::kRows4 == Rows4Mode::kUnsignedOffset) {
      for (int u = 0; u < U; ++u) {
        s[u] = _mm256_sub_epi32(s[u], _mm256_load_si256(reinterpret_cast<const __m256i*>(
                                          tab.offset + ((j0 + u) * tab.nb + b) * 8)));
      }
    }
  } else {
    for (int u = 0; u < U; ++u) {
      const __m256i xq =
          LoadU256(reinterpret_cast<const Act*>(t.xq + (j0 + u) * t.xq_stride)[b].qs);
      s[u] = SumRows4I32(DotI8(q_abs[0], q[0], xq), DotI8(q_abs[1], q[1], xq),
                         DotI8(q_abs[2], q[2], xq), DotI8(q_abs[3], q[3], xq));
    }
  }
  __m256 f[U];
  for (int u = 0; u < U; ++u) f[u] = _mm256_cvtepi32_ps(s[u]);
  for (int u = 0; u < U; ++u) {
    const __m256 scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(tab.dx + (j0 + u) * tab.nb + b));
    acc[u] = _mm256_fmadd_ps(f[u], scale, acc[u]);
    if constexpr (T::kRows4 == Rows4Mode::kUnsignedMin) {
      acc[u] = _mm256_fmadd_ps(mw, _mm256_broadcast_ss(tab.sx + (j0 + u) * tab.nb + b), acc[u]);
    }
  }
}

// Rows [r0, r1) in groups of four for NT tokens (NT == 0: t.nt <= kMatMulWideTileTokens, the
// accumulators in memory, updated two tokens at a time: interleaving two tokens' chains measured
// 3-4% faster than one, and four no faster than two).
// A last group of fewer than 4 rows repeats its last row in the missing lanes and stores only
// its own rows: each lane's arithmetic depends on its row alone, so every row gets the same bits
// whatever group, chunk or tile it is computed in (batch invariance).
template <class T, int NT>
void Rows4Tile(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  using Block = typename T::Block;
  constexpr Rows4Mode kMode = T::kRows4;
  static_assert(kUnsignedRows4<T> || kMode == Rows4Mode::kSignedMadd);
  // SumRows4I16 sums four maddubs pairs of code * x with codes in [0, kMaxCode], |x| <= 128.
  if constexpr (kUnsignedRows4<T>) static_assert(4 * 2 * T::kMaxCode * 128 <= 32767);
  constexpr int kAcc = NT > 0 ? NT : kMatMulWideTileTokens;
  const int nt = NT > 0 ? NT : t.nt;
  const int64_t nb = tab.nb;
  for (int64_t r = r0; r < r1; r += 4) {
    const int n_rows = static_cast<int>(std::min<int64_t>(4, r1 - r));
    const Block* w[4];
    for (int k = 0; k < 4; ++k) {
      w[k] = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r + std::min(k, n_rows - 1)) *
                                                      t.w_row_bytes);
    }
    __m256 acc[kAcc];
    for (int j = 0; j < nt; ++j) acc[j] = _mm256_setzero_ps();
    // The four rows are one contiguous span read as four interleaved streams, which the hardware
    // prefetchers follow poorly: fetch the group kPrefetchGroups ahead, 4 blocks' bytes per step.
    const char* ahead = reinterpret_cast<const char*>(w[0]) + kPrefetchGroups * 4 * t.w_row_bytes;
    static_assert(4 * sizeof(Block) <= 3 * 64);
    for (int64_t b = 0; b < nb; ++b) {
      const char* pf = ahead + static_cast<size_t>(b) * 4 * sizeof(Block);
      _mm_prefetch(pf, _MM_HINT_T0);
      _mm_prefetch(pf + 64, _MM_HINT_T0);
      _mm_prefetch(pf + 128, _MM_HINT_T0);
      __m256i q[4], q_abs[4];
      for (int k = 0; k < 4; ++k) {
        if constexpr (kUnsignedRows4<T>) {
          q[k] = T::UnsignedCodes(w[k][b]);
        } else {
          q[k] = T::Codes(w[k][b]);
          q_abs[k] = _mm256_sign_epi8(q[k], q[k]);
        }
      }
      const __m256 dw = RowScales4(w[0][b].d, w[1][b].d, w[2][b].d, w[3][b].d);
      __m256 mw = _mm256_setzero_ps();
      if constexpr (kMode == Rows4Mode::kUnsignedMin)
        mw = RowMins4Low(w[0][b].m, w[1][b].m, w[2][b].m, w[3][b].m);
      if constexpr (NT > 0) {
        AccumulateTokens<T, NT>(q, q_abs, dw, mw, t, tab, 0, b, acc);
      } else {
        int j = 0;
        for (; j + 2 <= nt; j += 2) AccumulateTokens<T, 2>(q, q_abs, dw, mw, t, tab, j, b, acc + j);
        if (j < nt) AccumulateTokens<T, 1>(q, q_abs, dw, mw, t, tab, j, b, acc + j);
      }
    }
    for (int j = 0; j < nt; ++j) {
      const __m128 sum =
          _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
      if (n_rows == 4) {
        _mm_storeu_ps(t.y + j * t.y_stride + r, sum);
      } else {
        float lanes[4];
        _mm_storeu_ps(lanes, sum);
        for (int k = 0; k < n_rows; ++k) t.y[j * t.y_stride + r + k] = lanes[k];
      }
    }
  }
}

// One token (decode): the arithmetic of Rows4Tile<T, 1> in a leaner loop (activation block,
// offsets and dx read once per block, no per-token indexing, four row pointers from one base and
// stride, prefetch only the lines a block group spans). Measured 4-10% faster than
// Rows4Tile<T, 1> (one thread, 640 inputs, weights streamed from memory); the loop is bound by
// vector uops, and interleaving two row groups per step was slower. Per (row, half block) the
// exact int32 sum, its convert, the scale dw * dx and the FMA into the half's accumulator lane
// are those of Rows4Tile, so a row has the same bits on both paths (batch invariance). A last
// partial group of rows goes to Rows4Tile<T, 1>.
template <class T>
static inline __m256i DecodeBlockSums(const typename T::Block* w0, size_t stride, int64_t b,
                                      __m256i xq) {
  using Block = typename T::Block;
  const auto row = [&](int k) -> const Block& {
    return reinterpret_cast<const Block*>(reinterpret_cast<const char*>(w0) + k * stride)[b];
  };
  if constexpr (kUnsignedRows4<T>) {
    static_assert(4 * 2 * T::kMaxCode * 128 <= 32767);  // SumRows4I16's bound, as in Rows4Tile
    const auto prod = [&](int k) { return _mm256_maddubs_epi16(T::UnsignedCodes(row(k)), xq); };
    return SumRows4I16(prod(0), prod(1), prod(2), prod(3));
  } else {
    const auto dot = [&](int k) {
      const __m256i q = T::Codes(row(k));
      return DotI8(_mm256_sign_epi8(q, q), q, xq);
    };
    return SumRows4I32(dot(0), dot(1), dot(2), dot(3));
  }
}

template <class T>
void Rows4Decode(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  using Block = typename T::Block;
  using Act = typename T::Act;
  const int64_t nb = tab.nb;
  const Act* x = reinterpret_cast<const Act*>(t.xq);
  const size_t stride = t.w_row_bytes;
  static_assert(4 * sizeof(Block) <= 3 * 64);
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    const Block* w = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r) * stride);
    const char* ahead = reinterpret_cast<const char*>(w) + kPrefetchGroups * 4 * stride;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const char* pf = ahead + static_cast<size_t>(b) * 4 * sizeof(Block);
      _mm_prefetch(pf, _MM_HINT_T0);
      _mm_prefetch(pf + 64, _MM_HINT_T0);
      if constexpr (4 * sizeof(Block) > 128) _mm_prefetch(pf + 128, _MM_HINT_T0);
      __m256i s = DecodeBlockSums<T>(w, stride, b, LoadU256(x[b].qs));
      if constexpr (T::kRows4 == Rows4Mode::kUnsignedOffset) {
        s = _mm256_sub_epi32(
            s, _mm256_load_si256(reinterpret_cast<const __m256i*>(tab.offset + b * 8)));
      }
      const auto blk = [&](int k) -> const Block& {
        return reinterpret_cast<const Block*>(reinterpret_cast<const char*>(w) + k * stride)[b];
      };
      const __m256 scale = _mm256_mul_ps(RowScales4(blk(0).d, blk(1).d, blk(2).d, blk(3).d),
                                         _mm256_broadcast_ss(tab.dx + b));
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc);
      if constexpr (T::kRows4 == Rows4Mode::kUnsignedMin) {
        acc = _mm256_fmadd_ps(RowMins4Low(blk(0).m, blk(1).m, blk(2).m, blk(3).m),
                              _mm256_broadcast_ss(tab.sx + b), acc);
      }
    }
    _mm_storeu_ps(t.y + r, _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
  }
  if (r < r1) Rows4Tile<T, 1>(t, tab, r, r1);
}

// The 1-row tile for any t.nt, 4 tokens at a time.
template <class T>
void Tile32Split(const MatMulTile& t, int64_t r0, int64_t r1) {
  for (int j0 = 0; j0 < t.nt; j0 += kMatMulTileTokens) {
    MatMulTile s = t;
    s.nt = std::min(kMatMulTileTokens, t.nt - j0);
    s.xq = t.xq + j0 * t.xq_stride;
    s.y = t.y + j0 * t.y_stride;
    switch (s.nt) {
      case 1:
        Tile32<T, 1>(s, r0, r1);
        break;
      case 2:
        Tile32<T, 2>(s, r0, r1);
        break;
      case 3:
        Tile32<T, 3>(s, r0, r1);
        break;
      default:
        Tile32<T, 4>(s, r0, r1);
        break;
    }
  }
}

// REQUIRES: one token's table fits kActTableBytes.
template <class T>
void Rows4Any(const MatMulTile& t, int64_t r0, int64_t r1) {
  alignas(32) unsigned char buf[kActTableBytes];
  const size_t token_bytes = static_cast<size_t>(t.n_in / 32) * ActTableBytesPerBlock<T>();
  const int pass = static_cast<int>(std::min<size_t>(t.nt, kActTableBytes / token_bytes));
  for (int j0 = 0; j0 < t.nt; j0 += pass) {
    MatMulTile s = t;
    s.nt = std::min(pass, t.nt - j0);
    s.xq = t.xq + j0 * t.xq_stride;
    s.y = t.y + j0 * t.y_stride;
    const ActTable tab = FillActTable<T>(s, buf);
    switch (s.nt) {
      case 1:
        Rows4Decode<T>(s, tab, r0, r1);
        break;
      case 2:
        Rows4Tile<T, 2>(s, tab, r0, r1);
        break;
      case 3:
        Rows4Tile<T, 3>(s, tab, r0, r1);
        break;
      case 4:
        Rows4Tile<T, 4>(s, tab, r0, r1);
        break;
      default:
        Rows4Tile<T, 0>(s, tab, r0, r1);
        break;
    }
  }
}

// Any t.nt <= kMatMulWideTileTokens.
template <class T>
void Tile32Any(const MatMulTile& t, int64_t r0, int64_t r1) {
  // Every token count, decode included, takes the same path for a given width, so a row's
  // result has the same bits whatever the batch.
  const int64_t nb = t.n_in / 32;
  if constexpr (T::kRows4 != Rows4Mode::kNone) {
    if (static_cast<size_t>(nb) * ActTableBytesPerBlock<T>() <= kActTableBytes)
      return Rows4Any<T>(t, r0, r1);
  }
  Tile32Split<T>(t, r0, r1);
}

template <class T>
void TileFloatAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1:
      return TileFloat<T, 1>(t, r0, r1);
    case 2:
      return TileFloat<T, 2>(t, r0, r1);
    case 3:
      return TileFloat<T, 3>(t, r0, r1);
    default:
      return TileFloat<T, 4>(t, r0, r1);
  }
}

static_assert(kMatMulTileTokens == 4, "the tile dispatchers above handle up to 4 tokens");
static_assert(kMatMulWideTileTokens >= kMatMulTileTokens);

}  // namespace

MatMulTileFn MatMulTileKernel(DType wtype) {
  switch (wtype) {
    case DType::kF32:
      return &TileFloatAny<F32Weights>;
    case DType::kF16:
      return &TileFloatAny<F16Weights>;
    case DType::kBF16:
      return &TileFloatAny<BF16Weights>;
    case DType::kQ4_0:
      return &Tile32Any<Q4_0Codes>;
    case DType::kQ4_1:
      return &Tile32Any<Q4_1Codes>;
    case DType::kQ5_0:
      return &Tile32Any<Q5_0Codes>;
    case DType::kQ5_1:
      return &Tile32Any<Q5_1Codes>;
    case DType::kQ8_0:
      return &Tile32Any<Q8_0Codes>;
    default:
      return MatMulTileKernelK(wtype);
  }
}

int64_t RowBlockMaxBlocks(DType wtype) {
  const auto max_blocks = [](size_t per_block) {
    return static_cast<int64_t>(kActTableBytes / per_block);
  };
  switch (wtype) {
    case DType::kQ4_0:
      return max_blocks(ActTableBytesPerBlock<Q4_0Codes>());
    case DType::kQ4_1:
      return max_blocks(ActTableBytesPerBlock<Q4_1Codes>());
    case DType::kQ5_0:
      return max_blocks(ActTableBytesPerBlock<Q5_0Codes>());
    case DType::kQ5_1:
      return max_blocks(ActTableBytesPerBlock<Q5_1Codes>());
    case DType::kQ8_0:
      return max_blocks(ActTableBytesPerBlock<Q8_0Codes>());
    default:
      return 0;
  }
}

int MatMulTileTokens(DType wtype) {
  switch (wtype) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
      return kMatMulWideTileTokens;
    default:
      return kMatMulTileTokens;
  }
}

}  // namespace gannet::cpu::avx2
