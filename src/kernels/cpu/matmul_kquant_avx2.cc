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

// The one f32 recipe every path follows per (row, token), so that a result does not depend on
// the batch it was computed in: for each super-block in order, acc = fma(d * xd, isum, acc)
// and, for Q4_K/Q5_K, acc = fnmadd(dmin * xd, msum, acc), isum and msum being the exact
// integer sums of the super-block.
static inline float AccumulateBlock(float acc, float dxd, int isum) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(dxd), _mm_cvtsi32_ss(_mm_setzero_ps(), isum), _mm_set_ss(acc)));
}
static inline float SubtractBlock(float acc, float dxd, int msum) {
  return _mm_cvtss_f32(_mm_fnmadd_ss(_mm_set_ss(dxd), _mm_cvtsi32_ss(_mm_setzero_ps(), msum), _mm_set_ss(acc)));
}

// 6-bit scales and mins of the 8 sub-blocks from a Q4_K/Q5_K scales[12].
static inline void DecodeScalesK4(const uint8_t* q, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = q[j] & 63;
    m[j] = q[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((q[j + 8] & 0x0F) | ((q[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
  }
}

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
    *hi = _mm256_or_si256(*hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(*hbits, 1), one), 4));
    *hbits = _mm256_srli_epi16(*hbits, 2);
  }
}

template <class Block, bool kHighBit, int NT>
void TileQ45K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  const BlockQ8_K* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const BlockQ8_K*>(t.xq + j * t.xq_stride);
  for (int64_t r = r0; r < r1; ++r) {
    const Block* w = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    float acc[NT];
    for (int j = 0; j < NT; ++j) acc[j] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const Block& wb = w[b];
      uint8_t sc[8], mn[8];
      DecodeScalesK4(wb.scales, sc, mn);
      uint64_t mn_bits;
      std::memcpy(&mn_bits, mn, 8);
      const __m128i mins16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mn_bits)));
      __m256i sumi[NT];
      for (int j = 0; j < NT; ++j) sumi[j] = _mm256_setzero_si256();
      __m256i hbits = _mm256_setzero_si256();
      if constexpr (kHighBit) hbits = LoadU256(wb.qh);
      for (int c = 0; c < 4; ++c) {
        __m256i lo, hi;
        UnpackQ45K<kHighBit>(wb.qs + 32 * c, &hbits, &lo, &hi);
        const __m256i s_lo = _mm256_set1_epi16(sc[2 * c]);
        const __m256i s_hi = _mm256_set1_epi16(sc[2 * c + 1]);
        for (int j = 0; j < NT; ++j) {
          const int8_t* q8 = x[j][b].qs + 64 * c;
          const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, LoadU256(q8)), s_lo);
          const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, LoadU256(q8 + 32)), s_hi);
          sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p_lo, p_hi));
        }
      }
      const float d = HalfToFloat(wb.d), dmin = HalfToFloat(wb.dmin);
      for (int j = 0; j < NT; ++j) {
        const BlockQ8_K& xb = x[j][b];
        acc[j] = AccumulateBlock(acc[j], d * xb.d, HorizontalSumI32(sumi[j]));
        // Sub-block k's activation sum is bsums[2k] + bsums[2k + 1].
        const __m256i bs = LoadU256(xb.bsums);
        const __m128i pair = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        __m128i m = _mm_madd_epi16(mins16, pair);
        m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
        m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 1));
        acc[j] = SubtractBlock(acc[j], dmin * xb.d, _mm_cvtsi128_si32(m));
      }
    }
    for (int j = 0; j < NT; ++j) t.y[j * t.y_stride + r] = acc[j];
  }
}

// The 128 6-bit codes (0..63) of half n of a Q6_K super-block: q[k] holds values 32k..32k+31 of
// that half (low nibbles from ql, the two high bits from qh).
static inline void UnpackQ6K(const BlockQ6_K& wb, int n, __m256i q[4]) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i low2 = _mm256_set1_epi8(0x03);
  const __m256i ql0 = LoadU256(wb.ql + 64 * n);
  const __m256i ql1 = LoadU256(wb.ql + 64 * n + 32);
  const __m256i qh = LoadU256(wb.qh + 32 * n);
  q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
}

template <int NT>
void TileQ6K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  const BlockQ8_K* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const BlockQ8_K*>(t.xq + j * t.xq_stride);
  for (int64_t r = r0; r < r1; ++r) {
    const BlockQ6_K* w = reinterpret_cast<const BlockQ6_K*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    float acc[NT];
    for (int j = 0; j < NT; ++j) acc[j] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& wb = w[b];
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
      __m256i sumi[NT];
      // code - 32: the -32 part is -32 * sum_k scale_k * bsums_k.
      for (int j = 0; j < NT; ++j) {
        sumi[j] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                   _mm256_slli_epi32(_mm256_madd_epi16(sc16, LoadU256(x[j][b].bsums)), 5));
      }
      for (int n = 0; n < 2; ++n) {
        __m256i q[4];
        UnpackQ6K(wb, n, q);
        for (int k = 0; k < 4; ++k) {
          // 32 values: the first 16 use scale 2k of this half, the next 16 scale 2k + 1.
          const int s = 8 * n + 2 * k;
          const __m256i scale = _mm256_setr_m128i(_mm_set1_epi16(wb.scales[s]), _mm_set1_epi16(wb.scales[s + 1]));
          for (int j = 0; j < NT; ++j) {
            const __m256i p = _mm256_maddubs_epi16(q[k], LoadU256(x[j][b].qs + 128 * n + 32 * k));
            sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(p, scale));
          }
        }
      }
      const float d = HalfToFloat(wb.d);
      for (int j = 0; j < NT; ++j) {
        acc[j] = AccumulateBlock(acc[j], d * x[j][b].d, HorizontalSumI32(sumi[j]));
      }
    }
    for (int j = 0; j < NT; ++j) t.y[j * t.y_stride + r] = acc[j];
  }
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
  const auto lo = static_cast<int>(static_cast<uint32_t>(a0) | 0x8000u | (static_cast<uint32_t>(b0) << 16) | 0x80000000u);
  const auto hi = static_cast<int>(static_cast<uint32_t>(a1) | 0x8000u | (static_cast<uint32_t>(b1) << 16) | 0x80000000u);
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

// Q4_K / Q5_K, 4 tokens.
template <class Block, bool kHighBit>
void TileQ45K4(const MatMulTile& t, int64_t r0, int64_t r1) {
  const BlockQ8_K* x[4];
  TileTokens4(t, x);
  const int64_t nb = t.n_in / 256;
  const __m256i min_lo_ctrl = PairCtrl(0, 1, 2, 3), min_hi_ctrl = PairCtrl(4, 5, 6, 7);
  __m256i scale_ctrl[8], dup_ctrl[4];
  for (int k = 0; k < 8; ++k) scale_ctrl[k] = _mm256_set1_epi16(static_cast<int16_t>(k | 0x8000));
  for (int k = 0; k < 4; ++k) dup_ctrl[k] = _mm256_set1_epi32(static_cast<int>(0x03020100u + 0x04040404u * k));
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
      bs[2 * (b - s0) + 1] = _mm256_set_m128i(_mm_unpackhi_epi64(t2, t3), _mm_unpacklo_epi64(t2, t3));
      xd[b - s0] = TokenScales4(x, b);
    }
    for (int64_t r = r0; r < r1; ++r) {
      const Block* w = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
      __m128 acc = LoadTokens4(t, r, s0 == 0);
      for (int64_t b = s0; b < s1; ++b) {
        const Block& wb = w[b];
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
            p_lo = _mm256_add_epi16(p_lo, _mm256_maddubs_epi16(_mm256_shuffle_epi8(lo, dup_ctrl[k]), a_lo[k]));
            p_hi = _mm256_add_epi16(p_hi, _mm256_maddubs_epi16(_mm256_shuffle_epi8(hi, dup_ctrl[k]), a_hi[k]));
          }
          sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(
              _mm256_madd_epi16(p_lo, _mm256_shuffle_epi8(scb, scale_ctrl[2 * c])),
              _mm256_madd_epi16(p_hi, _mm256_shuffle_epi8(scb, scale_ctrl[2 * c + 1]))));
        }
        const __m128 xdb = xd[b - s0];
        acc = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(HalfToFloat(wb.d)), xdb), _mm_cvtepi32_ps(AddLanes(sumi)), acc);
        acc = _mm_fnmadd_ps(_mm_mul_ps(_mm_set1_ps(HalfToFloat(wb.dmin)), xdb), _mm_cvtepi32_ps(AddLanes(msum)), acc);
      }
      StoreTokens4(t, r, acc);
    }
  }
}

// Q6_K, 4 tokens as two pairs: codes up to 63 leave room for one tree level only.
void TileQ6K4(const MatMulTile& t, int64_t r0, int64_t r1) {
  const BlockQ8_K* x[4];
  TileTokens4(t, x);
  const int64_t nb = t.n_in / 256;
  __m256i scale_ctrl[4];
  for (int k = 0; k < 4; ++k) scale_ctrl[k] = _mm256_set1_epi16(static_cast<int16_t>((4 * k) | ((4 * k + 1) << 8)));
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
    for (int64_t r = r0; r < r1; ++r) {
      const BlockQ6_K* w = reinterpret_cast<const BlockQ6_K*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
      __m128 acc = LoadTokens4(t, r, s0 == 0);
      for (int64_t b = s0; b < s1; ++b) {
        const BlockQ6_K& wb = w[b];
        // [s0..s7 | s8..s15] int16.
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
        const __m256i sc_lo = _mm256_unpacklo_epi32(sc16, sc16), sc_hi = _mm256_unpackhi_epi32(sc16, sc16);
        const __m256i* bsb = bs + 4 * (b - s0);
        // code - 32: the -32 part is -32 * sum_k scale_k * bsums_k.
        __m256i sumi01 = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_add_epi32(
            _mm256_madd_epi16(sc_lo, bsb[0]), _mm256_madd_epi16(sc_hi, bsb[1])), 5));
        __m256i sumi23 = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_add_epi32(
            _mm256_madd_epi16(sc_lo, bsb[2]), _mm256_madd_epi16(sc_hi, bsb[3])), 5));
        for (int n = 0; n < 2; ++n) {
          __m256i q[4];
          UnpackQ6K(wb, n, q);
          // Scales 8n..8n+7 as int16 in lane 0 and shifted down one in lane 1, so that word 2k of
          // lane 0 / 1 is the scale of the first / second 16 values of q[k].
          const __m128i s8 = n == 0 ? _mm256_castsi256_si128(sc16) : _mm256_extracti128_si256(sc16, 1);
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
        acc = _mm_fmadd_ps(dxd, _mm_cvtepi32_ps(AddLanes(Merge64I32(sumi01, sumi23))), acc);
      }
      StoreTokens4(t, r, acc);
    }
  }
}

template <class Block, bool kHighBit>
void TileQ45KAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1: return TileQ45K<Block, kHighBit, 1>(t, r0, r1);
    default: return TileQ45K4<Block, kHighBit>(t, r0, r1);
  }
}

void TileQ6KAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1: return TileQ6K<1>(t, r0, r1);
    default: return TileQ6K4(t, r0, r1);
  }
}

}  // namespace

MatMulTileFn MatMulTileKernelK(DType wtype) {
  switch (wtype) {
    case DType::kQ4_K: return &TileQ45KAny<BlockQ4_K, false>;
    case DType::kQ5_K: return &TileQ45KAny<BlockQ5_K, true>;
    case DType::kQ6_K: return &TileQ6KAny;
    default: return nullptr;
  }
}

}  // namespace gannet::cpu::avx2
