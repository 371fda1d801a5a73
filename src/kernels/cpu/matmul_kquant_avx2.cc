// AVX2 matmul tiles for the K-quants (Q4_K, Q5_K, Q6_K) against Q8_K activations, integer
// throughout a 256-value super-block: maddubs forms code x activation pair sums, madd applies
// the per-sub-block scale, and the mins (Q4_K/Q5_K) or the -32 offset (Q6_K) come from the
// activation's precomputed 16-value sums (bsums).
//
// Prefill (4 tokens per tile). On CPUs where the vector integer multiplies issue on one pipe
// (Zen 1), "maddubs + madd" per 32 values per token is bound by that pipe, so the 4-token
// tiles apply each scale with ONE madd for all 4 tokens, leaving the tokens in lanes: one cvt
// + FMA per super-block for the 4 tokens, with a vector of their activation scales.
//   Q4_K / Q5_K: the tile first interleaves its 4 tokens' activations in 4-byte groups; each
//     4-code weight group is repeated 4 times (pshufb) to meet them, so the maddubs outputs of
//     one 32-value sub-block add up lane by lane, tokens in lanes: 4 maddubs, 3 adds, 1 madd
//     per sub-block and 4 tokens. int16 bound: 4 maddubs x 2 products x cmax x 128 = 15360
//     (Q4_K, cmax 15) or 31744 (Q5_K, cmax 31), below 32767.
//   Q6_K: a 16-value scale, cmax 63: a maddubs lane (2 x 63 x 128 = 16128) has room for one
//     more addition only, so token pairs are merged with one unpack + add level (32256) before
//     the madd.
// The per-token parts (activation layout, scales, bsums in the lane order of the mins/offset
// madd) are prepared once per tile for up to kSliceBlocks super-blocks, then reused by every
// row of the tile. The activations are Q8_K codes in [-127, 127]; the bounds above hold for
// -128 too.
#include <algorithm>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx2 {
namespace {

// Row r's super-blocks. G == 1: the file layout, row r at r * w_row_bytes, its blocks in order.
// G == kRepackRows (repack.h): the rows are interleaved in groups of G, super-block b of row r
// at slot b * G + r % G of group r / G (the group's G rows take G * w_row_bytes). Either way
// super-block b of the row is [b * G] from the returned pointer.
template <int G, class Block>
static inline const Block* RowBlocks(const MatMulTile& t, int64_t r) {
  const uint8_t* group = t.w + static_cast<size_t>(r / G) * G * t.w_row_bytes;
  return reinterpret_cast<const Block*>(group) + r % G;
}

// The one f32 recipe every path follows per (row, token), so that a result does not depend on
// the batch it was computed in: for each super-block in order, acc = fma(d * xd, isum, acc)
// and, for Q4_K/Q5_K, acc = fnmadd(dmin * xd, msum, acc), isum and msum being the exact
// integer sums of the super-block (converted to f32 with the default rounding). The tiles run
// it with rows (decode) or tokens (prefill) in the lanes of one vector.

// Codes 64c..64c+63 of a Q4_K/Q5_K super-block from its 32 bytes qs[32c..]: lo gets the low
// nibbles (sub-block 2c), hi the high ones (sub-block 2c + 1). For Q5_K, *hbits (qh, shifted
// down two bits per chunk) supplies the 5th bits and is advanced.
template <bool kHighBit>
static inline void UnpackQ45K(const uint8_t* qs, __m256i* hbits, __m256i* lo, __m256i* hi) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i q4 = LoadU256(qs);
  *lo = _mm256_and_si256(q4, low4);
  *hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low4);
  if constexpr (kHighBit) {
    // Bit 2c of qh[l] is the 5th bit of the low-nibble value, bit 2c+1 of the high one.
    const __m256i one = _mm256_set1_epi8(1);
    *lo = _mm256_or_si256(*lo, _mm256_slli_epi16(_mm256_and_si256(*hbits, one), 4));
    *hi = _mm256_or_si256(
        *hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(*hbits, 1), one), 4));
    *hbits = _mm256_srli_epi16(*hbits, 2);
  }
}

// The 128 6-bit codes (0..63) of half n of a Q6_K super-block: q[k] holds values 32k..32k+31 of
// that half (low nibbles from ql, the two high bits from qh).
static inline void UnpackQ6K(const BlockQ6_K& wb, int n, __m256i q[4]) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i bits45 = _mm256_set1_epi8(0x30);
  const __m256i ql0 = LoadU256(wb.ql + 64 * n);
  const __m256i ql1 = LoadU256(wb.ql + 64 * n + 32);
  const __m256i qh = LoadU256(wb.qh + 32 * n);
  // Bit pair 2k of qh[l] is the top of q[k]: moved to bits 4-5 of each byte with one 16-bit
  // shift and a mask (bits that cross into the next byte are masked off).
  q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4),
                         _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
  q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                         _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                         _mm256_and_si256(qh, bits45));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
}

// Super-blocks whose per-token layout a tile prepares at once (32 x 256 = 8192 inputs); wider
// rows are walked in slices, the later slices adding to y.
constexpr int kSliceBlocks = 32;

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

// pshufb control that turns bytes a and b (of each 128-bit lane) into the int16 pair (a, b) in
// every dword; lane 1 takes bytes a1, b1.
static inline __m256i PairCtrl(int a0, int b0, int a1, int b1) {
  const auto lo = static_cast<int>(static_cast<uint32_t>(a0) | 0x8000u |
                                   (static_cast<uint32_t>(b0) << 16) | 0x80000000u);
  const auto hi = static_cast<int>(static_cast<uint32_t>(a1) | 0x8000u |
                                   (static_cast<uint32_t>(b1) << 16) | 0x80000000u);
  return _mm256_setr_epi32(lo, lo, lo, lo, hi, hi, hi, hi);
}

// One unpack + add tree level: in each 128-bit lane, the dwords of a and b alternate, each the
// sum of two dwords (int16 pairs) of its source.
static inline __m256i Merge32(__m256i a, __m256i b) {
  return _mm256_add_epi16(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
}
// int32 [t0, t1, t0, t1] and [t2, t3, t2, t3] (per lane) -> [t0, t1, t2, t3].
static inline __m256i Merge64I32(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}

// The 4 tile tokens' activation pointers; tokens past nt repeat token 0 (their sums are dropped).
static inline void TileTokens4(const MatMulTile& t, const BlockQ8_K* x[4]) {
  for (int j = 0; j < 4; ++j) {
    x[j] = reinterpret_cast<const BlockQ8_K*>(t.xq + (j < t.nt ? j : 0) * t.xq_stride);
  }
}

// [x0.d, x1.d, x2.d, x3.d].
static inline __m128 TokenScales4(const BlockQ8_K* const x[4], int64_t b) {
  return _mm_setr_ps(x[0][b].d, x[1][b].d, x[2][b].d, x[3][b].d);
}

// int32 [t0..t3 | t0..t3] partial sums -> the exact sums [t0..t3].
static inline __m128i AddLanes(__m256i v) {
  return _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

// A row's accumulators [t0..t3] for a slice: zero on the first slice, else where the previous
// slice left them in y (the f32 chain goes on unbroken, as in the one-token kernels).
static inline __m128 LoadTokens4(const MatMulTile& t, int64_t r, bool first) {
  alignas(16) float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (!first) {
    for (int j = 0; j < t.nt; ++j) s[j] = t.y[j * t.y_stride + r];
  }
  return _mm_load_ps(s);
}

static inline void StoreTokens4(const MatMulTile& t, int64_t r, __m128 acc) {
  alignas(16) float s[4];
  _mm_store_ps(s, acc);
  for (int j = 0; j < t.nt; ++j) t.y[j * t.y_stride + r] = s[j];
}

// The rows [r0, r1) of a tile over slice [s0, s1): step(block, super-block index, acc) -> acc
// runs one row's f32 chain over one super-block. Interleaved weights (G > 1) take the rows of a
// whole group together, super-block by super-block, so the tile reads the group's one contiguous
// stream (row by row, a row's super-blocks are G blocks apart and each cache line brought in
// serves one row); each row keeps its own chain, so the bits are the same either way.
template <int G, class Block, class Step>
static inline void TileRows4(const MatMulTile& t, int64_t r0, int64_t r1, int64_t s0, int64_t s1,
                             const Step& step) {
  for (int64_t r = r0; r < r1;) {
    const Block* w = RowBlocks<G, Block>(t, r);
    if (G > 1 && r % G == 0 && r + G <= r1) {
      __m128 acc[G];
      for (int k = 0; k < G; ++k) acc[k] = LoadTokens4(t, r + k, s0 == 0);
      for (int64_t b = s0; b < s1; ++b) {
        for (int k = 0; k < G; ++k) acc[k] = step(w[b * G + k], b, acc[k]);
      }
      for (int k = 0; k < G; ++k) StoreTokens4(t, r + k, acc[k]);
      r += G;
    } else {
      __m128 acc = LoadTokens4(t, r, s0 == 0);
      for (int64_t b = s0; b < s1; ++b) acc = step(w[b * G], b, acc);
      StoreTokens4(t, r, acc);
      ++r;
    }
  }
}

// Q4_K / Q5_K, 4 tokens.
template <class Block, bool kHighBit, int G>
void TileQ45K4(const MatMulTile& t, int64_t r0, int64_t r1) {
  const BlockQ8_K* x[4];
  TileTokens4(t, x);
  const int64_t nb = t.n_in / 256;
  const __m256i min_lo_ctrl = PairCtrl(0, 1, 2, 3), min_hi_ctrl = PairCtrl(4, 5, 6, 7);
  __m256i scale_ctrl[8], dup_ctrl[4];
  for (int k = 0; k < 8; ++k) scale_ctrl[k] = _mm256_set1_epi16(static_cast<int16_t>(k | 0x8000));
  for (int k = 0; k < 4; ++k)
    dup_ctrl[k] = _mm256_set1_epi32(static_cast<int>(0x03020100u + 0x04040404u * k));
  // Per super-block: the activations of the 4 tokens with their 4-byte groups interleaved,
  // [sub-block s][k] = [t0..t3 values 4k..4k+3 | t0..t3 values 16+4k..16+4k+3] of sub-block s,
  // so that a weight group repeated 4 times meets each token in maddubs and the int16 sums of
  // one sub-block add up lane by lane with the tokens in lanes (8 products per lane).
  // Then the 32-value activation sums as int16 pairs, [(s0, s1) of t0..t3 | (s2, s3) of t0..t3]
  // and the same for s4..s7, the lane order of the mins madd.
  alignas(32) __m256i act[32 * kSliceBlocks];
  alignas(32) __m256i bs[2 * kSliceBlocks];
  alignas(16) __m128 xd[kSliceBlocks];
  for (int64_t s0 = 0; s0 < nb; s0 += kSliceBlocks) {
    const int64_t s1 = std::min<int64_t>(nb, s0 + kSliceBlocks);
    for (int64_t b = s0; b < s1; ++b) {
      for (int s = 0; s < 8; ++s) {
        const __m256i v0 = LoadU256(x[0][b].qs + 32 * s), v1 = LoadU256(x[1][b].qs + 32 * s);
        const __m256i v2 = LoadU256(x[2][b].qs + 32 * s), v3 = LoadU256(x[3][b].qs + 32 * s);
        const __m256i t0 = _mm256_unpacklo_epi32(v0, v1), t1 = _mm256_unpacklo_epi32(v2, v3);
        const __m256i t2 = _mm256_unpackhi_epi32(v0, v1), t3 = _mm256_unpackhi_epi32(v2, v3);
        __m256i* out = act + 32 * (b - s0) + 4 * s;
        out[0] = _mm256_unpacklo_epi64(t0, t1);
        out[1] = _mm256_unpackhi_epi64(t0, t1);
        out[2] = _mm256_unpacklo_epi64(t2, t3);
        out[3] = _mm256_unpackhi_epi64(t2, t3);
      }
      __m128i v[4];
      for (int j = 0; j < 4; ++j) {
        const __m256i b16 = LoadU256(x[j][b].bsums);
        v[j] = _mm_hadd_epi16(_mm256_castsi256_si128(b16), _mm256_extracti128_si256(b16, 1));
      }
      const __m128i t0 = _mm_unpacklo_epi32(v[0], v[1]), t1 = _mm_unpacklo_epi32(v[2], v[3]);
      const __m128i t2 = _mm_unpackhi_epi32(v[0], v[1]), t3 = _mm_unpackhi_epi32(v[2], v[3]);
      bs[2 * (b - s0)] = _mm256_set_m128i(_mm_unpackhi_epi64(t0, t1), _mm_unpacklo_epi64(t0, t1));
      bs[2 * (b - s0) + 1] =
          _mm256_set_m128i(_mm_unpackhi_epi64(t2, t3), _mm_unpacklo_epi64(t2, t3));
      xd[b - s0] = TokenScales4(x, b);
    }
    const auto step = [&](const Block& wb, int64_t b, __m128 acc) __attribute__((always_inline)) {
      uint64_t sc_bits, mn_bits;
      DecodeScalesK4Packed(wb.scales, &sc_bits, &mn_bits);
      const __m256i scb = _mm256_set1_epi64x(static_cast<long long>(sc_bits));
      const __m256i mnb = _mm256_set1_epi64x(static_cast<long long>(mn_bits));
      const __m256i msum = _mm256_add_epi32(
          _mm256_madd_epi16(_mm256_shuffle_epi8(mnb, min_lo_ctrl), bs[2 * (b - s0)]),
          _mm256_madd_epi16(_mm256_shuffle_epi8(mnb, min_hi_ctrl), bs[2 * (b - s0) + 1]));
      const __m256i* ab = act + 32 * (b - s0);
      __m256i sumi = _mm256_setzero_si256();
      __m256i hbits = _mm256_setzero_si256();
      if constexpr (kHighBit) hbits = LoadU256(wb.qh);
      for (int c = 0; c < 4; ++c) {
        __m256i lo, hi;
        UnpackQ45K<kHighBit>(wb.qs + 32 * c, &hbits, &lo, &hi);
        const __m256i* a_lo = ab + 8 * c;
        const __m256i* a_hi = a_lo + 4;
        __m256i p_lo = _mm256_maddubs_epi16(_mm256_shuffle_epi8(lo, dup_ctrl[0]), a_lo[0]);
        __m256i p_hi = _mm256_maddubs_epi16(_mm256_shuffle_epi8(hi, dup_ctrl[0]), a_hi[0]);
        for (int k = 1; k < 4; ++k) {
          p_lo = _mm256_add_epi16(
              p_lo, _mm256_maddubs_epi16(_mm256_shuffle_epi8(lo, dup_ctrl[k]), a_lo[k]));
          p_hi = _mm256_add_epi16(
              p_hi, _mm256_maddubs_epi16(_mm256_shuffle_epi8(hi, dup_ctrl[k]), a_hi[k]));
        }
        sumi = _mm256_add_epi32(
            sumi, _mm256_add_epi32(
                      _mm256_madd_epi16(p_lo, _mm256_shuffle_epi8(scb, scale_ctrl[2 * c])),
                      _mm256_madd_epi16(p_hi, _mm256_shuffle_epi8(scb, scale_ctrl[2 * c + 1]))));
      }
      const __m128 xdb = xd[b - s0];
      acc = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(HalfToFloat(wb.d)), xdb),
                         _mm_cvtepi32_ps(AddLanes(sumi)), acc);
      return _mm_fnmadd_ps(_mm_mul_ps(_mm_set1_ps(HalfToFloat(wb.dmin)), xdb),
                           _mm_cvtepi32_ps(AddLanes(msum)), acc);
    };
    TileRows4<G, Block>(t, r0, r1, s0, s1, step);
  }
}

// Q6_K, 4 tokens as two pairs: codes up to 63 leave room for one tree level only.
template <int G>
void TileQ6K4(const MatMulTile& t, int64_t r0, int64_t r1) {
  const BlockQ8_K* x[4];
  TileTokens4(t, x);
  const int64_t nb = t.n_in / 256;
  __m256i scale_ctrl[4];
  for (int k = 0; k < 4; ++k)
    scale_ctrl[k] = _mm256_set1_epi16(static_cast<int16_t>((4 * k) | ((4 * k + 1) << 8)));
  // Per super-block: bsums of token pairs (0, 1) and (2, 3) with their dwords interleaved, the
  // lane order of the offset madd below.
  alignas(32) __m256i bs[4 * kSliceBlocks];
  alignas(16) __m128 xd[kSliceBlocks];
  for (int64_t s0 = 0; s0 < nb; s0 += kSliceBlocks) {
    const int64_t s1 = std::min<int64_t>(nb, s0 + kSliceBlocks);
    for (int64_t b = s0; b < s1; ++b) {
      for (int p = 0; p < 2; ++p) {
        const __m256i u = LoadU256(x[2 * p][b].bsums), v = LoadU256(x[2 * p + 1][b].bsums);
        bs[4 * (b - s0) + 2 * p] = _mm256_unpacklo_epi32(u, v);
        bs[4 * (b - s0) + 2 * p + 1] = _mm256_unpackhi_epi32(u, v);
      }
      xd[b - s0] = TokenScales4(x, b);
    }
    const auto step = [&](const BlockQ6_K& wb, int64_t b, __m128 acc)
        __attribute__((always_inline)) {
      // [s0..s7 | s8..s15] int16.
      const __m256i sc16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
      const __m256i sc_lo = _mm256_unpacklo_epi32(sc16, sc16),
                    sc_hi = _mm256_unpackhi_epi32(sc16, sc16);
      const __m256i* bsb = bs + 4 * (b - s0);
      // code - 32: the -32 part is -32 * sum_k scale_k * bsums_k.
      __m256i sumi01 = _mm256_sub_epi32(
          _mm256_setzero_si256(),
          _mm256_slli_epi32(
              _mm256_add_epi32(_mm256_madd_epi16(sc_lo, bsb[0]), _mm256_madd_epi16(sc_hi, bsb[1])),
              5));
      __m256i sumi23 = _mm256_sub_epi32(
          _mm256_setzero_si256(),
          _mm256_slli_epi32(
              _mm256_add_epi32(_mm256_madd_epi16(sc_lo, bsb[2]), _mm256_madd_epi16(sc_hi, bsb[3])),
              5));
      for (int n = 0; n < 2; ++n) {
        __m256i q[4];
        UnpackQ6K(wb, n, q);
        // Scales 8n..8n+7 as int16 in lane 0 and shifted down one in lane 1, so that word 2k of
        // lane 0 / 1 is the scale of the first / second 16 values of q[k].
        const __m128i s8 =
            n == 0 ? _mm256_castsi256_si128(sc16) : _mm256_extracti128_si256(sc16, 1);
        const __m256i sn = _mm256_set_m128i(_mm_srli_si128(s8, 2), s8);
        for (int k = 0; k < 4; ++k) {
          const __m256i scale = _mm256_shuffle_epi8(sn, scale_ctrl[k]);
          const int64_t off = 128 * n + 32 * k;
          const __m256i p0 = _mm256_maddubs_epi16(q[k], LoadU256(x[0][b].qs + off));
          const __m256i p1 = _mm256_maddubs_epi16(q[k], LoadU256(x[1][b].qs + off));
          const __m256i p2 = _mm256_maddubs_epi16(q[k], LoadU256(x[2][b].qs + off));
          const __m256i p3 = _mm256_maddubs_epi16(q[k], LoadU256(x[3][b].qs + off));
          sumi01 = _mm256_add_epi32(sumi01, _mm256_madd_epi16(Merge32(p0, p1), scale));
          sumi23 = _mm256_add_epi32(sumi23, _mm256_madd_epi16(Merge32(p2, p3), scale));
        }
      }
      const __m128 dxd = _mm_mul_ps(_mm_set1_ps(HalfToFloat(wb.d)), xd[b - s0]);
      return _mm_fmadd_ps(dxd, _mm_cvtepi32_ps(AddLanes(Merge64I32(sumi01, sumi23))), acc);
    };
    TileRows4<G, BlockQ6_K>(t, r0, r1, s0, s1, step);
  }
}

// ---- One token (decode) -------------------------------------------------------------------
// Per (row, super-block), "maddubs + madd" per 32 values would spend 16 of the one-pipe
// multiplies on 256 values. Here the maddubs results of several sub-blocks of one row are
// first merged in int16 by unpack + add levels, so that each 32-bit lane holds one
// sub-block's partial sum, and one madd applies the scales of all of them:
//   Q4_K / Q5_K: 4 sub-blocks per madd (two levels: 4 maddubs lanes of 2 x cmax x 128 each,
//     15360 / 31744 <= 32767), 8 maddubs + 2 madd per super-block; the mins of 4 rows take
//     two madds against the activation's 8 sub-block sums.
//   Q6_K: 16-value scales, cmax 63: one level (2 x 2 x 63 x 128 = 32256), 8 maddubs + 4 madd,
//     plus the madd of the -32 offset with the bsums.
// Rows go 4 at a time: their super-block sums are reduced together into the lanes of one
// vector (unpack/add trees instead of 4 horizontal sums) and the f32 recipe above runs on the
// 4 rows at once, lane by lane, so the bits are those of the 4-token tiles. A last group of
// fewer than 4 rows repeats its last row in the missing lanes.
// The 4 rows are 4 interleaved streams, which the hardware prefetcher follows poorly: each step
// prefetches the same super-block kDecodePrefetchGroups row groups ahead (a prefetch past the
// end of the weights is a hint that cannot fault). Rows repacked at load (G = kRepackRows) are
// one contiguous stream: a step prefetches it kStreamPrefetchBlocks super-blocks ahead.
constexpr int kDecodeRows = 4;
constexpr int kDecodePrefetchGroups = 1;
constexpr int64_t kStreamPrefetchBlocks = 8;

// int32 lanes of v0..v3 summed: [sum v0, sum v1, sum v2, sum v3].
static inline __m128i SumRows4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i a = _mm256_add_epi32(_mm256_unpacklo_epi32(v0, v1), _mm256_unpackhi_epi32(v0, v1));
  const __m256i b = _mm256_add_epi32(_mm256_unpacklo_epi32(v2, v3), _mm256_unpackhi_epi32(v2, v3));
  return AddLanes(Merge64I32(a, b));
}

// int16 [a b a' b' | ...] tree level at 64-bit granularity: dwords of a's and b's Merge32
// pairs end up as [a0, a1, b0, b1] per 128-bit lane.
static inline __m256i Merge64(__m256i a, __m256i b) {
  return _mm256_add_epi16(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}

// The rows of group [r, r + 4) within [r, r1): rows past r1 - 1 repeat it.
template <int G, class Block>
static inline void GroupRows(const MatMulTile& t, int64_t r, int64_t r1,
                             const Block* w[kDecodeRows]) {
  for (int k = 0; k < kDecodeRows; ++k) {
    const int64_t rk = std::min<int64_t>(r + k, r1 - 1);
    w[k] = RowBlocks<G, Block>(t, rk);
  }
}

// Every cache line of the super-block b of the rows kDecodePrefetchGroups groups ahead.
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
    // One stream: the group's super-blocks kStreamPrefetchBlocks ahead (past the row's end: the
    // next group's first ones).
    const char* p = reinterpret_cast<const char*>(w[0] + (b + kStreamPrefetchBlocks) * G);
    for (size_t o = 0; o < G * sizeof(Block); o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
  }
}

static inline void StoreRows4(const MatMulTile& t, int64_t r, int64_t r1, __m128 acc) {
  alignas(16) float s[4];
  _mm_store_ps(s, acc);
  for (int k = 0; k < kDecodeRows && r + k < r1; ++k) t.y[r + k] = s[k];
}

// Codes of chunk C (values 64C..64C+63) of a Q4_K/Q5_K super-block, as UnpackQ45K, the 5th
// bits of Q5_K taken from qh with one shift per vector: bit 2C of qh[l] is bit 4 of the
// low-nibble value, bit 2C + 1 of the high one (a 16-bit shift; the mask drops what crosses
// from the neighbouring byte).
template <bool kHighBit, int C>
static inline void UnpackQ45KChunk(const uint8_t* qs, __m256i qh, __m256i* lo, __m256i* hi) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i q4 = LoadU256(qs + 32 * C);
  *lo = _mm256_and_si256(q4, low4);
  *hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low4);
  if constexpr (kHighBit) {
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    const auto shift = [](__m256i v, int left) {  // left in [-3, 4], a constant after inlining
      return left >= 0 ? _mm256_slli_epi16(v, left) : _mm256_srli_epi16(v, -left);
    };
    *lo = _mm256_or_si256(*lo, _mm256_and_si256(shift(qh, 4 - 2 * C), bit4));
    *hi = _mm256_or_si256(*hi, _mm256_and_si256(shift(qh, 3 - 2 * C), bit4));
  }
}

// A row's sum of scale x code x activation over one Q4_K/Q5_K super-block (8 lanes); *mn gets
// its 8 mins (byte j: sub-block j).
template <class Block, bool kHighBit>
static inline __m256i RowSumQ45K(const Block& wb, const BlockQ8_K& xb, uint64_t* mn) {
  // Dword j of control h: sub-block 4h + j's scale as an int16 pair.
  const __m256i scale_ctrl0 = _mm256_setr_epi32(0x80008000, 0x80018001, 0x80028002, 0x80038003,
                                                0x80008000, 0x80018001, 0x80028002, 0x80038003);
  const __m256i scale_ctrl1 = _mm256_add_epi8(scale_ctrl0, _mm256_set1_epi32(0x00040004));
  uint64_t sc_bits;
  DecodeScalesK4Packed(wb.scales, &sc_bits, mn);
  const __m256i scb = _mm256_set1_epi64x(static_cast<long long>(sc_bits));
  __m256i qh = _mm256_setzero_si256();
  if constexpr (kHighBit) qh = LoadU256(wb.qh);
  // Chunks 2h and 2h + 1: sub-blocks 4h .. 4h + 3, values 128h .. 128h + 127. The merged
  // vector has sub-block 4h + j in dword j of each lane, 8 products per int16.
  const auto dot = [&xb](__m256i codes, int offset) {
    return _mm256_maddubs_epi16(codes, LoadU256(xb.qs + offset));
  };
  __m256i lo0, hi0, lo1, hi1;
  UnpackQ45KChunk<kHighBit, 0>(wb.qs, qh, &lo0, &hi0);
  UnpackQ45KChunk<kHighBit, 1>(wb.qs, qh, &lo1, &hi1);
  const __m256i m0 =
      Merge64(Merge32(dot(lo0, 0), dot(hi0, 32)), Merge32(dot(lo1, 64), dot(hi1, 96)));
  UnpackQ45KChunk<kHighBit, 2>(wb.qs, qh, &lo0, &hi0);
  UnpackQ45KChunk<kHighBit, 3>(wb.qs, qh, &lo1, &hi1);
  const __m256i m1 =
      Merge64(Merge32(dot(lo0, 128), dot(hi0, 160)), Merge32(dot(lo1, 192), dot(hi1, 224)));
  return _mm256_add_epi32(_mm256_madd_epi16(m0, _mm256_shuffle_epi8(scb, scale_ctrl0)),
                          _mm256_madd_epi16(m1, _mm256_shuffle_epi8(scb, scale_ctrl1)));
}

// sum_j mn_k[j] * (bsums[2j] + bsums[2j + 1]) for the 4 rows' mins mn_k: [row 0..3].
static inline __m128i MinSums4(const uint64_t mn[kDecodeRows], const BlockQ8_K& xb) {
  const __m256i bs = LoadU256(xb.bsums);
  // [sub-block sums 0..7 | the same] int16 (each at most 32 x 128).
  const __m128i pair = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
  const __m256i pairs = _mm256_set_m128i(pair, pair);
  const auto mins = [](uint64_t a, uint64_t b) {
    return _mm256_cvtepu8_epi16(
        _mm_set_epi64x(static_cast<long long>(b), static_cast<long long>(a)));
  };
  // [row 0 | row 1] and [row 2 | row 3], 4 partial sums each.
  const __m256i s01 = _mm256_madd_epi16(mins(mn[0], mn[1]), pairs);
  const __m256i s23 = _mm256_madd_epi16(mins(mn[2], mn[3]), pairs);
  __m256i s = _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
  s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  // [r0, r0, r2, r2 | r1, r1, r3, r3] -> [r0, r1, r2, r3].
  return _mm_blend_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1), 0b1010);
}

template <class Block, bool kHighBit, int G>
void DecodeQ45K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  const BlockQ8_K* x = reinterpret_cast<const BlockQ8_K*>(t.xq);
  for (int64_t r = r0; r < r1; r += kDecodeRows) {
    const Block* w[kDecodeRows];
    GroupRows<G>(t, r, r1, w);
    __m128 acc = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      PrefetchAhead<G>(t, w, b);
      const BlockQ8_K& xb = x[b];
      __m256i isum[kDecodeRows];
      uint64_t mn[kDecodeRows];
      uint32_t dd[kDecodeRows];  // each row's (d, dmin) halves
      for (int k = 0; k < kDecodeRows; ++k) {
        isum[k] = RowSumQ45K<Block, kHighBit>(w[k][b * G], xb, &mn[k]);
        std::memcpy(&dd[k], &w[k][b * G].d, 4);
      }
      // [d0, dmin0, d1, dmin1 | d2, dmin2, d3, dmin3] -> [d0..d3], [dmin0..dmin3].
      const __m256 dm =
          _mm256_cvtph_ps(_mm_setr_epi32(static_cast<int>(dd[0]), static_cast<int>(dd[1]),
                                         static_cast<int>(dd[2]), static_cast<int>(dd[3])));
      const __m128 dm_lo = _mm256_castps256_ps128(dm), dm_hi = _mm256_extractf128_ps(dm, 1);
      const __m128 xd = _mm_set1_ps(xb.d);
      const __m128 d4 = _mm_mul_ps(_mm_shuffle_ps(dm_lo, dm_hi, _MM_SHUFFLE(2, 0, 2, 0)), xd);
      const __m128 dmin4 = _mm_mul_ps(_mm_shuffle_ps(dm_lo, dm_hi, _MM_SHUFFLE(3, 1, 3, 1)), xd);
      acc = _mm_fmadd_ps(d4, _mm_cvtepi32_ps(SumRows4(isum[0], isum[1], isum[2], isum[3])), acc);
      acc = _mm_fnmadd_ps(dmin4, _mm_cvtepi32_ps(MinSums4(mn, xb)), acc);
    }
    StoreRows4(t, r, r1, acc);
  }
}

// A Q6_K block's 16 int8 scales as int16, even ones in lane 0, odd ones in lane 1:
// [s0, s2, .., s14 | s1, s3, .., s15]. The 16 values of scale 2i sit in lane 0 of the codes'
// vectors and those of scale 2i + 1 in lane 1, so one pshufb control serves both lanes.
static inline __m256i ScalesEvenOddQ6K(const int8_t* scales) {
  const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  return _mm256_cvtepi8_epi16(
      _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)), even_odd));
}

// The 16 bsums in the order of ScalesEvenOddQ6K: [b0, b2, .., b14 | b1, b3, .., b15].
static inline __m256i BsumsEvenOdd(const BlockQ8_K& xb) {
  const __m256i ctrl = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1,
                                        4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(LoadU256(xb.bsums), ctrl),
                                  _MM_SHUFFLE(3, 1, 2, 0));
}

// A row's integer sum of one Q6_K super-block (8 lanes), the -32 offset included; bs_eo is
// BsumsEvenOdd(xb).
static inline __m256i RowSumQ6K(const BlockQ6_K& wb, const BlockQ8_K& xb, __m256i bs_eo) {
  // Merge32(p[2i], p[2i + 1]) of half n holds the 16-value sums of scales 8n + 4i + (0, 2, 0, 2)
  // in the dwords of lane 0 and 8n + 4i + (1, 3, 1, 3) in lane 1: words 4n + 2i, 4n + 2i + 1 of
  // either lane of ScalesEvenOddQ6K, each repeated in its dword.
  const auto ctrl = [](int a) {
    const int lo = (2 * a) | ((2 * a + 1) << 8) | ((2 * a) << 16) | ((2 * a + 1) << 24);
    const int hi = lo + 0x02020202;
    return _mm256_setr_epi32(lo, hi, lo, hi, lo, hi, lo, hi);
  };
  const __m256i sc = ScalesEvenOddQ6K(wb.scales);
  // code - 32: the -32 part is -32 * sum_k scale_k * bsums_k.
  __m256i acc =
      _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc, bs_eo), 5));
  for (int n = 0; n < 2; ++n) {
    __m256i q[4];
    UnpackQ6K(wb, n, q);
    const int8_t* q8 = xb.qs + 128 * n;
    const __m256i p0 = _mm256_maddubs_epi16(q[0], LoadU256(q8));
    const __m256i p1 = _mm256_maddubs_epi16(q[1], LoadU256(q8 + 32));
    const __m256i p2 = _mm256_maddubs_epi16(q[2], LoadU256(q8 + 64));
    const __m256i p3 = _mm256_maddubs_epi16(q[3], LoadU256(q8 + 96));
    const __m256i s01 = _mm256_madd_epi16(Merge32(p0, p1), _mm256_shuffle_epi8(sc, ctrl(4 * n)));
    const __m256i s23 =
        _mm256_madd_epi16(Merge32(p2, p3), _mm256_shuffle_epi8(sc, ctrl(4 * n + 2)));
    acc = _mm256_add_epi32(acc, _mm256_add_epi32(s01, s23));
  }
  return acc;
}

template <int G>
void DecodeQ6K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  const BlockQ8_K* x = reinterpret_cast<const BlockQ8_K*>(t.xq);
  for (int64_t r = r0; r < r1; r += kDecodeRows) {
    const BlockQ6_K* w[kDecodeRows];
    GroupRows<G>(t, r, r1, w);
    __m128 acc = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      PrefetchAhead<G>(t, w, b);
      const BlockQ8_K& xb = x[b];
      const __m256i bs_eo = BsumsEvenOdd(xb);
      __m256i isum[kDecodeRows];
      for (int k = 0; k < kDecodeRows; ++k) isum[k] = RowSumQ6K(w[k][b * G], xb, bs_eo);
      const __m128i d16 = _mm_setr_epi16(
          static_cast<int16_t>(w[0][b * G].d), static_cast<int16_t>(w[1][b * G].d),
          static_cast<int16_t>(w[2][b * G].d), static_cast<int16_t>(w[3][b * G].d), 0, 0, 0, 0);
      const __m128 d4 = _mm_mul_ps(_mm_cvtph_ps(d16), _mm_set1_ps(xb.d));
      acc = _mm_fmadd_ps(d4, _mm_cvtepi32_ps(SumRows4(isum[0], isum[1], isum[2], isum[3])), acc);
    }
    StoreRows4(t, r, r1, acc);
  }
}

template <class Block, bool kHighBit, int G>
void TileQ45KAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1:
      return DecodeQ45K<Block, kHighBit, G>(t, r0, r1);
    default:
      return TileQ45K4<Block, kHighBit, G>(t, r0, r1);
  }
}

template <int G>
void TileQ6KAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1:
      return DecodeQ6K<G>(t, r0, r1);
    default:
      return TileQ6K4<G>(t, r0, r1);
  }
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

}  // namespace gannet::cpu::avx2
