// AVX2 matmul tiles for the K-quants (Q4_K, Q5_K, Q6_K) against Q8_K activations, integer
// throughout a 256-value super-block: maddubs forms code x activation pair sums, madd applies
// the per-sub-block scale, and the mins (Q4_K/Q5_K) or the -32 offset (Q6_K) come from the
// activation's precomputed 16-value sums (bsums). One f32 FMA per super-block and token.
#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx2 {
namespace {

// 6-bit scales and mins of the 8 sub-blocks from a Q4_K/Q5_K scales[12].
static inline void DecodeScalesK4(const uint8_t* q, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = q[j] & 63;
    m[j] = q[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((q[j + 8] & 0x0F) | ((q[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
  }
}

template <class Block, bool kHighBit, int NT>
void TileQ45K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  const BlockQ8_K* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const BlockQ8_K*>(t.xq + j * t.xq_stride);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i one = _mm256_set1_epi8(1);
  for (int64_t r = r0; r < r1; ++r) {
    const Block* w = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    __m256 acc[NT];
    float min_acc[NT];
    for (int j = 0; j < NT; ++j) {
      acc[j] = _mm256_setzero_ps();
      min_acc[j] = 0.0f;
    }
    for (int64_t b = 0; b < nb; ++b) {
      const Block& wb = w[b];
      uint8_t sc[8], mn[8];
      DecodeScalesK4(wb.scales, sc, mn);
      uint64_t mn_bits;
      std::memcpy(&mn_bits, mn, 8);
      const __m128i mins16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mn_bits)));
      __m256i sumi[NT];
      for (int j = 0; j < NT; ++j) sumi[j] = _mm256_setzero_si256();
      __m256i hbits;
      if constexpr (kHighBit) hbits = LoadU256(wb.qh);
      for (int c = 0; c < 4; ++c) {
        const __m256i q4 = LoadU256(wb.qs + 32 * c);
        __m256i lo = _mm256_and_si256(q4, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low4);
        if constexpr (kHighBit) {
          // Bit 2c of qh[l] is the 5th bit of the low-nibble value, bit 2c+1 of the high one.
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hbits, one), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 1), one), 4));
          hbits = _mm256_srli_epi16(hbits, 2);
        }
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
        acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb.d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        // Sub-block k's activation sum is bsums[2k] + bsums[2k + 1].
        const __m256i bs = LoadU256(xb.bsums);
        const __m128i pair = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        __m128i m = _mm_madd_epi16(mins16, pair);
        m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
        m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 1));
        min_acc[j] += (dmin * xb.d) * static_cast<float>(_mm_cvtsi128_si32(m));
      }
    }
    for (int j = 0; j < NT; ++j) t.y[j * t.y_stride + r] = HorizontalSum(acc[j]) - min_acc[j];
  }
}

template <int NT>
void TileQ6K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  const BlockQ8_K* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const BlockQ8_K*>(t.xq + j * t.xq_stride);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i low2 = _mm256_set1_epi8(0x03);
  for (int64_t r = r0; r < r1; ++r) {
    const BlockQ6_K* w = reinterpret_cast<const BlockQ6_K*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    __m256 acc[NT];
    for (int j = 0; j < NT; ++j) acc[j] = _mm256_setzero_ps();
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
        const __m256i ql0 = LoadU256(wb.ql + 64 * n);
        const __m256i ql1 = LoadU256(wb.ql + 64 * n + 32);
        const __m256i qh = LoadU256(wb.qh + 32 * n);
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4),
                               _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
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
        acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[j][b].d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
      }
    }
    for (int j = 0; j < NT; ++j) t.y[j * t.y_stride + r] = HorizontalSum(acc[j]);
  }
}

template <class Block, bool kHighBit>
void TileQ45KAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1: return TileQ45K<Block, kHighBit, 1>(t, r0, r1);
    case 2: return TileQ45K<Block, kHighBit, 2>(t, r0, r1);
    case 3: return TileQ45K<Block, kHighBit, 3>(t, r0, r1);
    default: return TileQ45K<Block, kHighBit, 4>(t, r0, r1);
  }
}

void TileQ6KAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1: return TileQ6K<1>(t, r0, r1);
    case 2: return TileQ6K<2>(t, r0, r1);
    case 3: return TileQ6K<3>(t, r0, r1);
    default: return TileQ6K<4>(t, r0, r1);
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
