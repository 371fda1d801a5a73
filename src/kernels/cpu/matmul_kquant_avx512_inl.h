// Internal to the AVX-512 K-quant kernels (matmul_kquant_avx512.cc, the 4/8-token and one-token
// tiles; matmul_kquant_wide_avx512.cc, the 16-token tiles): the weight unpacking both share.
// Include only from files compiled with the AVX-512 flags (src/CMakeLists.txt), so that no
// baseline file gets these inline functions.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx512 {

// Row r's super-blocks. G == 1: the file layout, row r at r * w_row_bytes, its blocks in order.
// G == kRepackRows (repack.h): the rows are interleaved in groups of G, super-block b of row r
// at slot b * G + r % G of group r / G (the group's G rows take G * w_row_bytes). Either way
// super-block b of the row is [b * G] from the returned pointer.
template <int G, class Block>
static inline const Block* RowBlocks(const MatMulTile& t, int64_t r) {
  const uint8_t* group = t.w + static_cast<size_t>(r / G) * G * t.w_row_bytes;
  return reinterpret_cast<const Block*>(group) + r % G;
}

// Requests every cache line of super-block b + ahead of an interleaved group (G > 1) whose first
// row's super-blocks start at w0: the group's stream, one contiguous run (past the group's end:
// the next group's first ones). kLocality as __builtin_prefetch's: 3 into L1 (prefetcht0), 2
// into L2 (prefetcht1). A hint; cannot fault.
template <int G, class Block, int kLocality>
static inline void PrefetchGroupStream(const Block* w0, int64_t b, int64_t ahead) {
  static_assert(G > 1, "the file layout's rows are separate streams");
  const char* p = reinterpret_cast<const char*>(w0 + (b + ahead) * G);
  for (size_t o = 0; o < G * sizeof(Block); o += 64) __builtin_prefetch(p + o, 0, kLocality);
}

static inline float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }
static inline __m256i Load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
static inline __m512i Load512(const void* p) { return _mm512_loadu_si512(p); }
// [lo[0..31] | hi[0..31]].
static inline __m512i Join256(const void* lo, const void* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(Load256(lo)), Load256(hi), 1);
}

// A Q4_K/Q5_K super-block's codes (u8): c[0] the low nibbles of qs[0..63] (sub-blocks 0 and 2 in
// the two 256-bit halves), c[1] their high nibbles (1, 3), c[2], c[3] the same of qs[64..127]
// (4, 6 and 5, 7); Q5_K's fifth bits from qh.
template <class Block, bool kHighBit>
static inline void UnpackQ45K(const Block& wb, __m512i c[4]) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i q0 = Load512(wb.qs), q1 = Load512(wb.qs + 64);
  c[0] = _mm512_and_si512(q0, low4);
  c[1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), low4);
  c[2] = _mm512_and_si512(q1, low4);
  c[3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), low4);
  if constexpr (kHighBit) {
    // Bit 2C of qh[l] is the 5th bit of chunk C's low-nibble value l, bit 2C + 1 of its high
    // one; chunk C sits in 256-bit half C % 2 of c[C / 2 * 2] and c[C / 2 * 2 + 1]. h holds qh in
    // its low half and qh >> 2 in its high half, so bits 0, 1, 4, 5 of h serve all of them (the
    // 16-bit shifts' carries between bytes are masked off).
    const __m256i qh = Load256(wb.qh);
    const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    c[0] = _mm512_or_si512(c[0], _mm512_and_si512(_mm512_slli_epi16(h, 4), bit4));
    c[1] = _mm512_or_si512(c[1], _mm512_and_si512(_mm512_slli_epi16(h, 3), bit4));
    c[2] = _mm512_or_si512(c[2], _mm512_and_si512(h, bit4));
    c[3] = _mm512_or_si512(c[3], _mm512_and_si512(_mm512_srli_epi16(h, 1), bit4));
  }
}

// The 16-byte heads of the 4 rows' super-blocks (d, dmin, the 12 packed scale bytes; the same
// in Q4_K and Q5_K), row k in 128-bit lane k.
template <class Block>
static inline __m512i LoadHeads4(const Block* const wb[4]) {
  const auto head = [](const Block* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  };
  const __m512i h = _mm512_castsi128_si512(head(wb[0]));
  return _mm512_inserti32x4(
      _mm512_inserti32x4(_mm512_inserti32x4(h, head(wb[1]), 1), head(wb[2]), 2), head(wb[3]), 3);
}

// The 6-bit scales and mins of LoadHeads4's 4 rows, unpacked in every lane at once: lane k =
// [row k's scales 0..7 | its mins 0..7] as bytes (DecodeScalesK4Packed's bytes, per lane).
// With q the packed bytes (head bytes 4..15): sc[j] = q[j] & 63 and mn[j] = q[j + 4] & 63 for
// j < 4; sc[j] = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4 and mn[j] = (q[j + 4] >> 4) | (q[j] >> 6)
// << 4 for j >= 4.
static inline __m512i UnpackScales4(__m512i heads) {
  const __m512i lo_src = _mm512_broadcast_i32x4(
      _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i hi_src = _mm512_broadcast_i32x4(
      _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
  const __m512i lo_mask = _mm512_broadcast_i32x4(
      _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
  const __m512i nib_mask =
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
  const __m512i a = _mm512_shuffle_epi8(heads, lo_src);
  const __m512i low = _mm512_or_si512(_mm512_and_si512(a, lo_mask),
                                      _mm512_and_si512(_mm512_srli_epi16(a, 4), nib_mask));
  // (byte & 0xC0) >> 2 via a 16-bit shift: bits 4-5 come from the byte's own bits 6-7.
  const __m512i top = _mm512_and_si512(_mm512_srli_epi16(_mm512_shuffle_epi8(heads, hi_src), 2),
                                       _mm512_set1_epi8(0x30));
  return _mm512_or_si512(low, top);
}

// Decode reads a Q6_K super-block's codes in value order: c[k] = values 64k..64k+63, so that the
// activations meet them as they are stored (a[k] = x[64k..64k+63], no per-super-block layout) and
// 128-bit lane l of c[k] is exactly the 16 values of scale 4k + l. ql[0..63] holds values 0..63
// (low nibbles) and 64..127 (high), ql[64..127] values 128..255; the two high bits of value v
// (of half n = v / 128, at l = v % 32) are bit pair (v % 128) / 32 of qh[32n + l], brought to bits
// 4-5 by one variable 16-bit shift per vector (left 4 or 2, right 0 or 2 by 256-bit half; the
// mask drops what crosses from the neighbouring byte).
static inline void UnpackQ6KOrdered(const BlockQ6_K& wb, __m512i c[4]) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i bits45 = _mm512_set1_epi8(0x30);
  const __m512i left = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i right = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m512i l0 = Load512(wb.ql), l1 = Load512(wb.ql + 64);
  const __m512i qa = _mm512_broadcast_i64x4(Load256(wb.qh));
  const __m512i qb = _mm512_broadcast_i64x4(Load256(wb.qh + 32));
  c[0] = _mm512_or_si512(_mm512_and_si512(l0, low4),
                         _mm512_and_si512(_mm512_sllv_epi16(qa, left), bits45));
  c[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), low4),
                         _mm512_and_si512(_mm512_srlv_epi16(qa, right), bits45));
  c[2] = _mm512_or_si512(_mm512_and_si512(l1, low4),
                         _mm512_and_si512(_mm512_sllv_epi16(qb, left), bits45));
  c[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), low4),
                         _mm512_and_si512(_mm512_srlv_epi16(qb, right), bits45));
}

}  // namespace gannet::cpu::avx512
