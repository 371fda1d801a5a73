// AVX-512 (F/BW/VL) + VNNI matmul tiles for the K-quants (Q4_K, Q5_K, Q6_K) against Q8_K
// activations: one token (decode) and tiles of 2..8 tokens here; 9..16 tokens go to the
// tokens-in-lanes tiles of matmul_kquant_wide_avx512.cc (same bits). Compiled with the AVX-512
// flags; reached only when AvailableIsas reports Isa::kAvx512 (matmul.cc picks it).
//
// vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products to an int32
// lane in one instruction (no int16 stage to saturate), which is what AVX2 does with maddubs +
// madd. The K-quant codes are unsigned (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63, the -32 of Q6_K
// taken from the activation's bsums) and Q8_K activations signed, so each 32 values of a
// sub-block are one vpdpbusd per 64 values of a zmm. A dpbusd lane holds 4 products, at most
// 4 x 63 x 128 = 32256 in magnitude, so two sub-blocks' lanes pack into int16 (packssdw, exact)
// and one vpdpwssd applies the sub-block scales of both: per 256-value super-block and row,
// 4 dpbusd + 2 packs + 2 dpwssd.
//
// Layout. A zmm of Q4_K/Q5_K codes is 64 bytes of qs, whose low nibbles are values 0..31 of
// sub-blocks 2c and 2c + 2 (bytes 0..31 and 32..63) and whose high nibbles are sub-blocks
// 2c + 1 and 2c + 3; the activations are laid out to meet them ([x 0..31 | x 64..95] etc.)
// once per super-block (decode: shared by the 4 rows of a step) or once per tile (prefill).
// Q6_K takes its two 128-value halves in the two 256-bit halves of a zmm.
//
// Bits. Every integer sum is exact, and the f32 recipe per (row, token) is the AVX2 kernels'
// (matmul_kquant_avx2.cc): for each super-block in order, acc = fma(d * xd, isum, acc) and, for
// Q4_K/Q5_K, acc = fnmadd(dmin * xd, msum, acc), rows (decode) or tokens (prefill) in the lanes
// of one vector. So a result has the same bits here as in the AVX2 kernels, whatever the batch
// (MatMulKQuantTiles.Avx512BitsEqualAvx2 checks it).
// GCC 12's AVX-512 intrinsic headers initialise their "undefined" vectors from themselves, which
// -Wmaybe-uninitialized reports at every inlined use (a false positive, gone in later GCC).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/matmul_kquant_avx512_inl.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx512 {
namespace {

// pshufb control: word w of 128-bit lane l takes byte idx(l, w) of that lane, as its low byte
// with the high byte zero (zero-extension), or, for kHigh, as its high byte with the low byte
// zero (an arithmetic shift right by 8 then sign-extends it).
template <bool kHigh, class F>
static inline __m512i WordCtrl(F idx) {
  alignas(64) int8_t c[64];
  for (int l = 0; l < 4; ++l) {
    for (int w = 0; w < 8; ++w) {
      const auto b = static_cast<int8_t>(idx(l, w));
      c[16 * l + 2 * w] = kHigh ? int8_t{-128} : b;
      c[16 * l + 2 * w + 1] = kHigh ? b : int8_t{-128};
    }
  }
  return _mm512_load_si512(c);
}

// Packed 6-bit scales and mins of a Q4_K/Q5_K super-block: byte j of *sc / *mn is sub-block j's.
static inline void DecodeScalesK4Packed(const uint8_t* q, uint64_t* sc, uint64_t* mn) {
  uint32_t u[3];
  std::memcpy(u, q, 12);
  const uint32_t sc_lo = u[0] & 0x3F3F3F3F, mn_lo = u[1] & 0x3F3F3F3F;
  const uint32_t sc_hi = (u[2] & 0x0F0F0F0F) | ((u[0] >> 2) & 0x30303030);
  const uint32_t mn_hi = ((u[2] >> 4) & 0x0F0F0F0F) | ((u[1] >> 2) & 0x30303030);
  *sc = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *mn = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
}

// Per 128-bit lane, the int32 lanes of v0..v3 summed in pairs: [v0, v1, v2, v3] partial sums.
static inline __m512i Interleave4(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
  const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
  const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}
// The four 128-bit lanes of v added.
static inline __m128i AddLanes4(__m512i v) {
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
// 4x4 dword transpose into a zmm: lane l = [v0[l], v1[l], v2[l], v3[l]].
static inline __m512i Transpose4(__m128i v0, __m128i v1, __m128i v2, __m128i v3) {
  const __m128i t0 = _mm_unpacklo_epi32(v0, v1), t1 = _mm_unpacklo_epi32(v2, v3);
  const __m128i t2 = _mm_unpackhi_epi32(v0, v1), t3 = _mm_unpackhi_epi32(v2, v3);
  const __m256i lo = _mm256_set_m128i(_mm_unpackhi_epi64(t0, t1), _mm_unpacklo_epi64(t0, t1));
  const __m256i hi = _mm256_set_m128i(_mm_unpackhi_epi64(t2, t3), _mm_unpacklo_epi64(t2, t3));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// ---- Q4_K / Q5_K ------------------------------------------------------------------------------
// c[0]: low nibbles of qs[0..63] (sub-blocks 0, 2), c[1]: high nibbles (1, 3), c[2], c[3]: the
// same of qs[64..127] (4, 6 and 5, 7). a[k]: the activations they meet.
static inline void ArrangeQ45K(const int8_t* qs, __m512i a[4]) {
  a[0] = Join256(qs, qs + 64);
  a[1] = Join256(qs + 32, qs + 96);
  a[2] = Join256(qs + 128, qs + 192);
  a[3] = Join256(qs + 160, qs + 224);
}

// Scale controls: s01 gives lanes 0, 1 of the packed dpbusd pair (c[0], c[1]) the scales of
// sub-blocks 0 (words 0..3) and 1 (words 4..7), lanes 2, 3 those of 2 and 3; s23 the same +4.
struct CtrlQ45K {
  __m512i s01, s23, mins;
  CtrlQ45K()
      : s01(WordCtrl<false>([](int l, int w) { return (l >= 2 ? 2 : 0) + (w >= 4 ? 1 : 0); })),
        s23(WordCtrl<false>([](int l, int w) { return 4 + (l >= 2 ? 2 : 0) + (w >= 4 ? 1 : 0); })),
        // Lane l: the mins of sub-blocks 2l, 2l + 1 as int16 pairs (for the prefill tiles).
        mins(WordCtrl<false>([](int l, int w) { return 2 * l + (w & 1); })),
        // pair[k]: every word of lane l the scale of c[k]'s sub-block there (PairSum): c[0]
        // holds sub-blocks 0 (lanes 0, 1) and 2 (lanes 2, 3), c[1] 1 and 3, c[2] 4 and 6, c[3]
        // 5 and 7.
        pair{PairCtrl(0), PairCtrl(1), PairCtrl(4), PairCtrl(5)} {}
  __m512i pair[4];

 private:
  static __m512i PairCtrl(int base) {
    return WordCtrl<false>([base](int l, int) { return base + (l >= 2 ? 2 : 0); });
  }
};

// One row's sum of scale x code x activation over a super-block (16 int32 partial sums).
static inline __m512i DotQ45K(const __m512i c[4], const __m512i a[4], __m512i s01, __m512i s23) {
  const __m512i z = _mm512_setzero_si512();
  const __m512i p01 =
      _mm512_packs_epi32(_mm512_dpbusd_epi32(z, c[0], a[0]), _mm512_dpbusd_epi32(z, c[1], a[1]));
  const __m512i p23 =
      _mm512_packs_epi32(_mm512_dpbusd_epi32(z, c[2], a[2]), _mm512_dpbusd_epi32(z, c[3], a[3]));
  return _mm512_dpwssd_epi32(_mm512_madd_epi16(p01, s01), p23, s23);
}

// ---- Q6_K -------------------------------------------------------------------------------------
// q[k]: values 32k..32k+31 of half 0 in the low 256 bits, of half 1 in the high ones.
static inline void UnpackQ6K(const BlockQ6_K& wb, __m512i q[4]) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i bits45 = _mm512_set1_epi8(0x30);
  const __m512i l0 = Join256(wb.ql, wb.ql + 64), l1 = Join256(wb.ql + 32, wb.ql + 96);
  const __m512i qh = Load512(wb.qh);
  q[0] = _mm512_or_si512(_mm512_and_si512(l0, low4),
                         _mm512_and_si512(_mm512_slli_epi16(qh, 4), bits45));
  q[1] = _mm512_or_si512(_mm512_and_si512(l1, low4),
                         _mm512_and_si512(_mm512_slli_epi16(qh, 2), bits45));
  q[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), low4),
                         _mm512_and_si512(qh, bits45));
  q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), low4),
                         _mm512_and_si512(_mm512_srli_epi16(qh, 2), bits45));
}

static inline void ArrangeQ6K(const int8_t* qs, __m512i a[4]) {
  for (int k = 0; k < 4; ++k) a[k] = Join256(qs + 32 * k, qs + 128 + 32 * k);
}

// (Prefill.) q[k] has 16-value scale 2k in lane 0, 2k + 1 in lane 1, 8 + 2k and 9 + 2k in lanes
// 2, 3 (from the 16 scale bytes broadcast to every lane, as int16). pair[k]: every word of lane
// l that scale (PairSum). off0 / off1: lane l the scales 2l, 2l + 1 / 8 + 2l, 9 + 2l as int16
// pairs, for the -32 offset against the bsums.
struct CtrlQ6K {
  __m512i off0, off1, pair[4];
  CtrlQ6K()
      : off0(WordCtrl<true>([](int l, int w) { return 2 * l + (w & 1); })),
        off1(WordCtrl<true>([](int l, int w) { return 8 + 2 * l + (w & 1); })),
        pair{PairCtrl(0), PairCtrl(1), PairCtrl(2), PairCtrl(3)} {}

 private:
  static __m512i PairCtrl(int k) {
    return WordCtrl<true>([k](int l, int) { return l < 2 ? 2 * k + l : 8 + 2 * k + l - 2; });
  }
};

static inline __m512i SignedWords(__m512i bytes16, __m512i ctrl) {
  return _mm512_srai_epi16(_mm512_shuffle_epi8(bytes16, ctrl), 8);
}

// ---- One token (decode): 4 rows per step, as the AVX2 kernels --------------------------------
// (and their prefetch: the same super-block of the next row group in the file layout, the one
// stream kStreamPrefetchBlocks super-blocks ahead in the repacked layout)
constexpr int kDecodeRows = 4;
constexpr int kDecodePrefetchGroups = 1;
constexpr int64_t kStreamPrefetchBlocks = 8;

template <int G, class Block>
static inline void GroupRows(const MatMulTile& t, int64_t r, int64_t r1,
                             const Block* w[kDecodeRows]) {
  for (int k = 0; k < kDecodeRows; ++k) {
    const int64_t rk = std::min<int64_t>(r + k, r1 - 1);
    w[k] = RowBlocks<G, Block>(t, rk);
  }
}

// Every cache line of super-block b of the rows one group ahead (a hint; cannot fault).
template <int G, class Block>
static inline void PrefetchAhead(const MatMulTile& t, const Block* const w[kDecodeRows],
                                 int64_t b) {
  if constexpr (G == 1) {
    const size_t ahead = kDecodePrefetchGroups * kDecodeRows * t.w_row_bytes;
    for (int k = 0; k < kDecodeRows; ++k) {
      const char* p = reinterpret_cast<const char*>(w[k] + b) + ahead;
      for (size_t o = 0; o < sizeof(Block); o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
    }
  } else {
    PrefetchGroupStream<G, Block, 3>(w[0], b, kStreamPrefetchBlocks);
  }
}

static inline void StoreRows4(const MatMulTile& t, int64_t r, int64_t r1, __m128 acc) {
  alignas(16) float s[4];
  _mm_store_ps(s, acc);
  for (int k = 0; k < kDecodeRows && r + k < r1; ++k) t.y[r + k] = s[k];
}

// sum_j mn_k[j] * (bsums[2j] + bsums[2j + 1]) for the 4 rows' mins (the high qword of each lane
// of UnpackScales4): [row 0..3].
static inline __m128i MinSums4(__m512i scales, const BlockQ8_K& xb) {
  const __m256i bs = Load256(xb.bsums);
  const __m128i pair = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
  const __m512i pairs = _mm512_broadcast_i32x4(pair);
  const __m512i mins = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(
      _mm512_permutexvar_epi64(_mm512_setr_epi64(1, 3, 5, 7, 1, 3, 5, 7), scales)));
  // Lane k: row k's 4 partial sums, then their total in every dword of the lane.
  __m512i m = _mm512_madd_epi16(mins, pairs);
  m = _mm512_add_epi32(m, _mm512_shuffle_epi32(m, _MM_PERM_CDAB));
  m = _mm512_add_epi32(m, _mm512_shuffle_epi32(m, _MM_PERM_BADC));
  return _mm512_castsi512_si128(_mm512_permutexvar_epi32(
      _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), m));
}

// 4 rows' integer sums [row 0..3] of 16 partial sums each.
static inline __m128i SumRows4(const __m512i v[kDecodeRows]) {
  return AddLanes4(Interleave4(v[0], v[1], v[2], v[3]));
}

// Lane l of every 128-bit lane of v: a broadcast of v's lane l.
template <int L>
static inline __m512i BroadcastLane(__m512i v) {
  return _mm512_shuffle_i32x4(v, v, L * 0x55);
}

template <class Block, bool kHighBit, int G>
void DecodeQ45K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const CtrlQ45K ctrl;
  const int64_t nb = t.n_in / 256;
  const BlockQ8_K* x = reinterpret_cast<const BlockQ8_K*>(t.xq);
  for (int64_t r = r0; r < r1; r += kDecodeRows) {
    const Block* w[kDecodeRows];
    GroupRows<G>(t, r, r1, w);
    __m128 acc = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      PrefetchAhead<G>(t, w, b);
      const BlockQ8_K& xb = x[b];
      __m512i a[4];
      ArrangeQ45K(xb.qs, a);
      const Block* wb[kDecodeRows];
      for (int k = 0; k < kDecodeRows; ++k) wb[k] = &w[k][b * G];
      const __m512i heads = LoadHeads4(wb);
      const __m512i scales = UnpackScales4(heads);
      __m512i isum[kDecodeRows];
      const auto row = [&](int k, __m512i scb) {
        __m512i c[4];
        UnpackQ45K<Block, kHighBit>(*wb[k], c);
        isum[k] =
            DotQ45K(c, a, _mm512_shuffle_epi8(scb, ctrl.s01), _mm512_shuffle_epi8(scb, ctrl.s23));
      };
      row(0, BroadcastLane<0>(scales));
      row(1, BroadcastLane<1>(scales));
      row(2, BroadcastLane<2>(scales));
      row(3, BroadcastLane<3>(scales));
      // [d0, dmin0, d1, dmin1 | d2, dmin2, d3, dmin3] -> [d0..d3], [dmin0..dmin3].
      const __m256 dm = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi32(
          _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), heads)));
      const __m128 dm_lo = _mm256_castps256_ps128(dm), dm_hi = _mm256_extractf128_ps(dm, 1);
      const __m128 xd = _mm_set1_ps(xb.d);
      const __m128 d4 = _mm_mul_ps(_mm_shuffle_ps(dm_lo, dm_hi, _MM_SHUFFLE(2, 0, 2, 0)), xd);
      const __m128 dmin4 = _mm_mul_ps(_mm_shuffle_ps(dm_lo, dm_hi, _MM_SHUFFLE(3, 1, 3, 1)), xd);
      acc = _mm_fmadd_ps(d4, _mm_cvtepi32_ps(SumRows4(isum)), acc);
      acc = _mm_fnmadd_ps(dmin4, _mm_cvtepi32_ps(MinSums4(scales, xb)), acc);
    }
    StoreRows4(t, r, r1, acc);
  }
}

// The -32 offset, once per super-block for every row: off[k] = -32 x (each dpbusd lane's 4
// activations summed), the accumulator each row's dpbusd starts from, so that its lanes hold
// sum (code - 32) x exactly (at most 4 x 32 x 128 = 16384: the int16 packs stay exact).
static inline void OffsetQ6K(const __m512i a[4], __m512i off[4]) {
  const __m512i k32 = _mm512_set1_epi8(32);
  const __m512i z = _mm512_setzero_si512();
  for (int k = 0; k < 4; ++k) off[k] = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, k32, a[k]));
}

template <int G>
void DecodeQ6K(const MatMulTile& t, int64_t r0, int64_t r1) {
  // Packed pairs (c[0], c[1]) and (c[2], c[3]): lane l takes words 0..3 from the first (scale
  // 4k + l) and 4..7 from the second; the scales as int16 from the 16 scale bytes in every lane.
  const __m512i s01_ctrl = WordCtrl<true>([](int l, int w) { return (w >= 4 ? 4 : 0) + l; });
  const __m512i s23_ctrl = WordCtrl<true>([](int l, int w) { return 8 + (w >= 4 ? 4 : 0) + l; });
  const int64_t nb = t.n_in / 256;
  const BlockQ8_K* x = reinterpret_cast<const BlockQ8_K*>(t.xq);
  for (int64_t r = r0; r < r1; r += kDecodeRows) {
    const BlockQ6_K* w[kDecodeRows];
    GroupRows<G>(t, r, r1, w);
    __m128 acc = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      PrefetchAhead<G>(t, w, b);
      const BlockQ8_K& xb = x[b];
      __m512i a[4], off[4];
      for (int k = 0; k < 4; ++k) a[k] = Load512(xb.qs + 64 * k);
      OffsetQ6K(a, off);
      __m512i isum[kDecodeRows];
      for (int k = 0; k < kDecodeRows; ++k) {
        const BlockQ6_K& wb = w[k][b * G];
        const __m512i sb =
            _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
        __m512i c[4];
        UnpackQ6KOrdered(wb, c);
        const __m512i p01 = _mm512_packs_epi32(_mm512_dpbusd_epi32(off[0], c[0], a[0]),
                                               _mm512_dpbusd_epi32(off[1], c[1], a[1]));
        const __m512i p23 = _mm512_packs_epi32(_mm512_dpbusd_epi32(off[2], c[2], a[2]),
                                               _mm512_dpbusd_epi32(off[3], c[3], a[3]));
        isum[k] = _mm512_dpwssd_epi32(_mm512_madd_epi16(p01, SignedWords(sb, s01_ctrl)), p23,
                                      SignedWords(sb, s23_ctrl));
      }
      const __m128i d16 = _mm_setr_epi16(
          static_cast<int16_t>(w[0][b * G].d), static_cast<int16_t>(w[1][b * G].d),
          static_cast<int16_t>(w[2][b * G].d), static_cast<int16_t>(w[3][b * G].d), 0, 0, 0, 0);
      const __m128 d4 = _mm_mul_ps(_mm_cvtph_ps(d16), _mm_set1_ps(xb.d));
      acc = _mm_fmadd_ps(d4, _mm_cvtepi32_ps(SumRows4(isum)), acc);
    }
    StoreRows4(t, r, r1, acc);
  }
}

// ---- Prefill: tiles of 4 or 8 tokens, tokens in the lanes of the f32 recipe -----------------
// The tile lays out its tokens' activations (ArrangeQ45K / ArrangeQ6K) and bsums once for a
// slice of super-blocks; every row of the tile then unpacks each weight super-block once and
// meets every token with it. Wider rows are walked in slices, later slices adding to y (the f32
// chain goes on unbroken: y holds it exactly). 1..4 tokens take the 4-token tile and 5..8 the
// 8-token one (the lanes' arithmetic is the same, so the bits are too).
// Slice bytes: N tokens x 4 zmm x 64 B per super-block: 32 KiB.
template <int N>
constexpr int kSliceBlocks = 128 / N;

// The tile's token activation pointers; tokens past nt repeat token 0 (their sums are dropped).
template <int N>
static inline void TileTokens(const MatMulTile& t, const BlockQ8_K* x[N]) {
  for (int j = 0; j < N; ++j) {
    x[j] = reinterpret_cast<const BlockQ8_K*>(t.xq + (j < t.nt ? j : 0) * t.xq_stride);
  }
}

static inline __m256 LoadTokens(const MatMulTile& t, int64_t r, bool first) {
  alignas(32) float s[8] = {};
  if (!first) {
    for (int j = 0; j < t.nt; ++j) s[j] = t.y[j * t.y_stride + r];
  }
  return _mm256_load_ps(s);
}

static inline void StoreTokens(const MatMulTile& t, int64_t r, __m256 acc) {
  alignas(32) float s[8];
  _mm256_store_ps(s, acc);
  for (int j = 0; j < t.nt; ++j) t.y[j * t.y_stride + r] = s[j];
}

// A tile slice's per-token data: activations as the row kernels meet them, the tokens' scales,
// and, per group of 4 tokens, bsums transposed so that lane l holds every token's dword l (token
// 4g + j in dword j).
template <int N>
struct Slice {
  alignas(64) __m512i act[kSliceBlocks<N>][N][4];
  alignas(64) __m512i bs[kSliceBlocks<N>][N / 4][2];
  alignas(32) __m256 xd[kSliceBlocks<N>];
};

// Q4_K/Q5_K: bs[b][g][0] lane l = the group's 32-value sums of sub-blocks 2l, 2l + 1 (int16).
// Q6_K: bs[b][g][0] / [1] lane l = the group's bsums 2l, 2l + 1 / 8 + 2l, 9 + 2l.
template <bool kQ6, int N>
static void PrepareSlice(const BlockQ8_K* const x[N], int64_t s0, int64_t s1, Slice<N>* s) {
  for (int64_t b = s0; b < s1; ++b) {
    const int64_t i = b - s0;
    alignas(32) float xd[8] = {};
    for (int g = 0; g < N / 4; ++g) {
      __m128i lo[4], hi[4];
      for (int j = 0; j < 4; ++j) {
        const BlockQ8_K& xb = x[4 * g + j][b];
        xd[4 * g + j] = xb.d;
        const __m256i bsums = Load256(xb.bsums);
        lo[j] = _mm256_castsi256_si128(bsums);
        hi[j] = _mm256_extracti128_si256(bsums, 1);
        if constexpr (kQ6) {
          ArrangeQ6K(xb.qs, s->act[i][4 * g + j]);
        } else {
          ArrangeQ45K(xb.qs, s->act[i][4 * g + j]);
          lo[j] = _mm_hadd_epi16(lo[j], hi[j]);
        }
      }
      s->bs[i][g][0] = Transpose4(lo[0], lo[1], lo[2], lo[3]);
      if constexpr (kQ6) s->bs[i][g][1] = Transpose4(hi[0], hi[1], hi[2], hi[3]);
    }
    s->xd[i] = _mm256_load_ps(xd);
  }
}

// The lane sums of one zmm per group of 4 tokens: [tokens 0..N-1] (lanes past N zero).
template <int N>
static inline __m256i TokenSums(const __m512i p[N / 4]) {
  if constexpr (N == 4) {
    return _mm256_zextsi128_si256(AddLanes4(p[0]));
  } else {
    return _mm256_set_m128i(AddLanes4(p[1]), AddLanes4(p[0]));
  }
}

// Prefill multiplies one row's code vector with the tokens two at a time: the dpbusd sums of
// tokens A and B pack into one int16 vector (lane l: words 0..3 A's, 4..7 B's; exact, at most
// 4 x 63 x 128 = 32256), and one madd / dpwssd with the scale of the vector's lane applies it
// to both, so the 4 code vectors of a super-block leave [A, A, B, B] partial sums per lane.
static inline __m512i PairDot(__m512i c, __m512i a, __m512i b) {
  const __m512i z = _mm512_setzero_si512();
  return _mm512_packs_epi32(_mm512_dpbusd_epi32(z, c, a), _mm512_dpbusd_epi32(z, c, b));
}
static inline __m512i PairSum(const __m512i c[4], const __m512i a[4], const __m512i b[4],
                              const __m512i sc[4]) {
  __m512i s = _mm512_madd_epi16(PairDot(c[0], a[0], b[0]), sc[0]);
  for (int k = 1; k < 4; ++k) s = _mm512_dpwssd_epi32(s, PairDot(c[k], a[k], b[k]), sc[k]);
  return s;
}
// Per 128-bit lane, [A, A, B, B] and [C, C, D, D] partial sums -> [A, B, C, D].
static inline __m512i MergePairs(__m512i ab, __m512i cd) {
  const __m512 x = _mm512_castsi512_ps(ab), y = _mm512_castsi512_ps(cd);
  return _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(2, 0, 2, 0))),
                          _mm512_castps_si512(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 1, 3, 1))));
}
// The 4 tokens 4g..4g+3 of a slice position: [t0, t1, t2, t3] partial sums per lane.
template <int N>
static inline __m512i QuadSum(const __m512i c[4], const __m512i (&act)[N][4], int g,
                              const __m512i sc[4]) {
  return MergePairs(PairSum(c, act[4 * g], act[4 * g + 1], sc),
                    PairSum(c, act[4 * g + 2], act[4 * g + 3], sc));
}

// The rows [r0, r1) of a tile over slice [s0, s1): step(block, slice position, acc) -> acc runs
// one row's f32 chain over one super-block. Interleaved weights (G > 1) take the rows of a whole
// group together, super-block by super-block, so the tile reads the group's one contiguous
// stream (row by row, a row's super-blocks are G blocks apart and each cache line brought in
// serves one row); each row keeps its own chain, so the bits are the same either way.
template <int G, class Block, class Step>
static inline void TileRows(const MatMulTile& t, int64_t r0, int64_t r1, int64_t s0, int64_t s1,
                            const Step& step) {
  for (int64_t r = r0; r < r1;) {
    const Block* w = RowBlocks<G, Block>(t, r);
    if (G > 1 && r % G == 0 && r + G <= r1) {
      __m256 acc[G];
      for (int k = 0; k < G; ++k) acc[k] = LoadTokens(t, r + k, s0 == 0);
      for (int64_t b = s0; b < s1; ++b) {
        for (int k = 0; k < G; ++k) acc[k] = step(w[b * G + k], b - s0, acc[k]);
      }
      for (int k = 0; k < G; ++k) StoreTokens(t, r + k, acc[k]);
      r += G;
    } else {
      __m256 acc = LoadTokens(t, r, s0 == 0);
      for (int64_t b = s0; b < s1; ++b) acc = step(w[b * G], b - s0, acc);
      StoreTokens(t, r, acc);
      ++r;
    }
  }
}

template <class Block, bool kHighBit, int N, int G>
void TileQ45K(const MatMulTile& t, int64_t r0, int64_t r1) {
  constexpr int kSlice = kSliceBlocks<N>;
  const CtrlQ45K ctrl;
  const BlockQ8_K* x[N];
  TileTokens<N>(t, x);
  const int64_t nb = t.n_in / 256;
  Slice<N> s;
  // One row's f32 chain over super-block wb (slice position i): [tokens] in the lanes.
  const auto step = [&](const Block& wb, int64_t i, __m256 acc) __attribute__((always_inline)) {
    uint64_t sc_bits, mn_bits;
    DecodeScalesK4Packed(wb.scales, &sc_bits, &mn_bits);
    const __m512i scb = _mm512_set1_epi64(static_cast<long long>(sc_bits));
    __m512i sc[4];
    for (int k = 0; k < 4; ++k) sc[k] = _mm512_shuffle_epi8(scb, ctrl.pair[k]);
    const __m512i mins =
        _mm512_shuffle_epi8(_mm512_set1_epi64(static_cast<long long>(mn_bits)), ctrl.mins);
    __m512i c[4];
    UnpackQ45K<Block, kHighBit>(wb, c);
    __m512i p[N / 4], m[N / 4];
    for (int g = 0; g < N / 4; ++g) {
      p[g] = QuadSum<N>(c, s.act[i], g, sc);
      m[g] = _mm512_madd_epi16(mins, s.bs[i][g][0]);
    }
    const __m256 xd = s.xd[i];
    acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(HalfToFloat(wb.d)), xd),
                          _mm256_cvtepi32_ps(TokenSums<N>(p)), acc);
    return _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_set1_ps(HalfToFloat(wb.dmin)), xd),
                            _mm256_cvtepi32_ps(TokenSums<N>(m)), acc);
  };
  for (int64_t s0 = 0; s0 < nb; s0 += kSlice) {
    const int64_t s1 = std::min<int64_t>(nb, s0 + kSlice);
    PrepareSlice<false, N>(x, s0, s1, &s);
    TileRows<G, Block>(t, r0, r1, s0, s1, step);
  }
}

template <int N, int G>
void TileQ6K(const MatMulTile& t, int64_t r0, int64_t r1) {
  constexpr int kSlice = kSliceBlocks<N>;
  const CtrlQ6K ctrl;
  const BlockQ8_K* x[N];
  TileTokens<N>(t, x);
  const int64_t nb = t.n_in / 256;
  Slice<N> s;
  const auto step = [&](const BlockQ6_K& wb, int64_t i, __m256 acc) __attribute__((always_inline)) {
    const __m512i sb =
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
    __m512i sc[4];
    for (int k = 0; k < 4; ++k) sc[k] = SignedWords(sb, ctrl.pair[k]);
    const __m512i off0 = SignedWords(sb, ctrl.off0), off1 = SignedWords(sb, ctrl.off1);
    __m512i q[4];
    UnpackQ6K(wb, q);
    __m512i p[N / 4];
    for (int g = 0; g < N / 4; ++g) {
      // Lane l, dword j: token 4g + j's part of sum_k scale_k bsums_k, times 32 off.
      const __m512i off = _mm512_add_epi32(_mm512_madd_epi16(off0, s.bs[i][g][0]),
                                           _mm512_madd_epi16(off1, s.bs[i][g][1]));
      p[g] = _mm512_sub_epi32(QuadSum<N>(q, s.act[i], g, sc), _mm512_slli_epi32(off, 5));
    }
    const __m256 dxd = _mm256_mul_ps(_mm256_set1_ps(HalfToFloat(wb.d)), s.xd[i]);
    return _mm256_fmadd_ps(dxd, _mm256_cvtepi32_ps(TokenSums<N>(p)), acc);
  };
  for (int64_t s0 = 0; s0 < nb; s0 += kSlice) {
    const int64_t s1 = std::min<int64_t>(nb, s0 + kSlice);
    PrepareSlice<true, N>(x, s0, s1, &s);
    TileRows<G, BlockQ6_K>(t, r0, r1, s0, s1, step);
  }
}

// 9..16 tokens: the tokens-in-lanes tiles (matmul_kquant_wide_avx512.cc), same bits. Below 9
// their idle lanes cost more than they save: at 8 tokens (2048 x 2048, one core) they ran Q4_K
// at 73 and Q6_K at 66 G multiply-adds/s against the 8-token tiles' 94 and 86.
constexpr int kWideFromTokens = 9;

// 5 tokens: a 4-token tile and the fifth alone cost less than one 8-token tile with 3 idle lanes
// (640 x 2048 repacked, one core: Q4_K 62 -> 79, Q6_K 56 -> 68 G multiply-adds/s). For 6 and 7
// the same timings put 4 + 2 and 4 + 3 above one 8-token tile. Every tile gives a token the same
// bits.
template <class Tile4, class Tile1>
void FourAndOne(const MatMulTile& t, int64_t r0, int64_t r1, Tile4 tile4, Tile1 tile1) {
  MatMulTile head = t;
  head.nt = 4;
  tile4(head, r0, r1);
  MatMulTile last = t;
  last.nt = 1;
  last.xq = t.xq + 4 * t.xq_stride;
  last.y = t.y + 4 * t.y_stride;
  tile1(last, r0, r1);
}

template <class Block, bool kHighBit, int G>
void TileQ45KAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  if (t.nt == 1) return DecodeQ45K<Block, kHighBit, G>(t, r0, r1);
  if (t.nt <= 4) return TileQ45K<Block, kHighBit, 4, G>(t, r0, r1);
  if (t.nt == 5) {
    return FourAndOne(t, r0, r1, TileQ45K<Block, kHighBit, 4, G>, DecodeQ45K<Block, kHighBit, G>);
  }
  if (t.nt < kWideFromTokens) return TileQ45K<Block, kHighBit, 8, G>(t, r0, r1);
  MatMulTileKernelKWide(kHighBit ? DType::kQ5_K : DType::kQ4_K, G > 1)(t, r0, r1);
}

template <int G>
void TileQ6KAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  if (t.nt == 1) return DecodeQ6K<G>(t, r0, r1);
  if (t.nt <= 4) return TileQ6K<4, G>(t, r0, r1);
  if (t.nt == 5) return FourAndOne(t, r0, r1, TileQ6K<4, G>, DecodeQ6K<G>);
  if (t.nt < kWideFromTokens) return TileQ6K<8, G>(t, r0, r1);
  MatMulTileKernelKWide(DType::kQ6_K, G > 1)(t, r0, r1);
}

template <int G>
MatMulTileFn KQuantKernel(DType wtype) {
  switch (wtype) {
    case DType::kQ4_K:
      return &TileQ45KAny<BlockQ4_K, false, G>;
    case DType::kQ5_K:
      return &TileQ45KAny<BlockQ5_K, true, G>;
    case DType::kQ6_K:
      return &TileQ6KAny<G>;
    default:
      return nullptr;
  }
}

}  // namespace

MatMulTileFn MatMulTileKernelK(DType wtype) { return KQuantKernel<1>(wtype); }

MatMulTileFn MatMulTileKernelKInterleaved(DType wtype) { return KQuantKernel<kRepackRows>(wtype); }

}  // namespace gannet::cpu::avx512
