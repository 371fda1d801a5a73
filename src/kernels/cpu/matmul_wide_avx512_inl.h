// Internal to the AVX-512 tiles with the tokens in the lanes (matmul_kquant_wide_avx512.cc, the
// K-quants; matmul_q4_wide_avx512.cc, Q4_0 / Q4_1 / Q5_0 / Q5_1): the transposes both share, of
// the activations into the lanes and of the results back into y. Include only from files compiled
// with the AVX-512 flags (src/CMakeLists.txt), so that no baseline file gets these inline
// functions.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/matmul_internal.h"

namespace gannet::cpu::avx512 {

// Tokens per tile (one per int32 / f32 lane of a zmm) and rows per step of those tiles.
inline constexpr int kWideTokens = 16;
inline constexpr int kWideRows = 4;

// r[t] = 16 dwords of token t -> r[d] = dword d of the 16 tokens (lane t).
static inline void Transpose16(__m512i r[16]) {
  __m512i a[16], b[16];
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // b[4i + e], 128-bit lane L: tokens 4i..4i+3 of dword 4L + e.
  for (int i = 0; i < 4; ++i) {
    b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
    b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
  }
  // Then a 4 x 4 transpose of 128-bit lanes: r[4L + e] lane i = b[4i + e] lane L.
  for (int e = 0; e < 4; ++e) {
    const __m512i u0 = _mm512_shuffle_i32x4(b[e], b[4 + e], 0x44);
    const __m512i u1 = _mm512_shuffle_i32x4(b[e], b[4 + e], 0xEE);
    const __m512i u2 = _mm512_shuffle_i32x4(b[8 + e], b[12 + e], 0x44);
    const __m512i u3 = _mm512_shuffle_i32x4(b[8 + e], b[12 + e], 0xEE);
    r[e] = _mm512_shuffle_i32x4(u0, u2, 0x88);
    r[4 + e] = _mm512_shuffle_i32x4(u0, u2, 0xDD);
    r[8 + e] = _mm512_shuffle_i32x4(u1, u3, 0x88);
    r[12 + e] = _mm512_shuffle_i32x4(u1, u3, 0xDD);
  }
}

// Per 128-bit lane, the 4 x 4 transpose of v[0..3] (an involution): rows k with token t in lane
// t become, in v[m] lane L, token 4L + m's values of the 4 rows, which are 4 consecutive floats of
// y; and back.
static inline void TransposeLanes4(__m512 v[kWideRows]) {
  const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
  const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
  const auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  const auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  v[0] = lo(t0, t2);
  v[1] = hi(t0, t2);
  v[2] = lo(t1, t3);
  v[3] = hi(t1, t3);
}

// acc[k] lane j = y[j][r + k] (the chain so far), or zero for the first slice. Rows past r1 read
// as zero (their lanes are never stored).
static inline void LoadAcc(const MatMulTile& t, int64_t r, int64_t r1, bool first,
                           __m512 acc[kWideRows]) {
  if (first) {
    for (int k = 0; k < kWideRows; ++k) acc[k] = _mm512_setzero_ps();
    return;
  }
  alignas(64) float s[kWideRows][kWideTokens / 4][kWideRows] =
      {};  // [m][L][k]: token 4L + m, row r + k
  for (int j = 0; j < t.nt; ++j) {
    const float* src = t.y + j * t.y_stride + r;
    if (r + kWideRows <= r1) {
      _mm_store_ps(s[j % 4][j / 4], _mm_loadu_ps(src));
    } else {
      for (int k = 0; r + k < r1; ++k) s[j % 4][j / 4][k] = src[k];
    }
  }
  for (int m = 0; m < kWideRows; ++m) acc[m] = _mm512_load_ps(s[m]);
  TransposeLanes4(acc);
}

static inline void StoreAcc(const MatMulTile& t, int64_t r, int64_t r1,
                            const __m512 acc[kWideRows]) {
  __m512 v[kWideRows] = {acc[0], acc[1], acc[2], acc[3]};
  TransposeLanes4(v);
  alignas(64) float s[kWideRows][kWideTokens / 4][kWideRows];
  for (int m = 0; m < kWideRows; ++m) _mm512_store_ps(s[m], v[m]);
  for (int j = 0; j < t.nt; ++j) {
    float* dst = t.y + j * t.y_stride + r;
    if (r + kWideRows <= r1) {
      _mm_storeu_ps(dst, _mm_load_ps(s[j % 4][j / 4]));
    } else {
      for (int k = 0; r + k < r1; ++k) dst[k] = s[j % 4][j / 4][k];
    }
  }
}

}  // namespace gannet::cpu::avx512
