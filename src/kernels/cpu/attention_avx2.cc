// AVX2 + FMA + F16C attention kernel (one work item; the split and dispatch are in
// attention.cc). Same online-softmax algorithm as scalar::AttentionItem, over the same key
// sequence and tiles (AttentionKeysOf / AttentionTileRows); K and V rows are converted from f16
// with vcvtph2ps once per tile for all the item's heads (ItemImpl says how the sums are ordered).
//
// Compiled with -mavx2 -mfma -mf16c: everything used here is local (internal linkage) or a
// compiler builtin, never an inline function from a shared header (see ops_internal.h).
#include <immintrin.h>

#include <algorithm>
#include <memory>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_internal.h"

namespace gannet::cpu::avx2 {
namespace {

constexpr int64_t kTile = kAttentionTile;

inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256 LoadF16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline float F16One(uint16_t h) { return _cvtsh_ss(h); }

// Requests the cache lines of [p, p + bytes).
inline void Prefetch(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(c + b, _MM_HINT_T1);
}

// The widest head this kernel takes (its f32 tiles live on the stack); wider heads take the
// scalar kernel.
constexpr int64_t kMaxHeadDim = kAttentionMaxHeadDim;
// Keys whose scores are summed together (one accumulator each, reduced by one tree of hadds).
constexpr int64_t kKeyBlock = 8;

// The 8 sums of 8 vectors: lane i of the result is the sum of a[i]'s lanes, always added as
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
inline __m256 Sum8x8(const __m256 a[8]) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  // u0 = [a0 lo, a1 lo, a2 lo, a3 lo | a0 hi, a1 hi, a2 hi, a3 hi], u1 the same for a4..a7.
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// out[0, 8 NC) = sum over i < n of w[i] * v[i * dp + (0, 8 NC)], the keys in order; NC
// accumulators in registers (a count known at compile time).
template <int NC>
inline void AccumulateVChunks(float* out, const float* v, int64_t dp, const float* w, int64_t n) {
  __m256 acc[NC];
  for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; ++i) {
    const __m256 wi = _mm256_broadcast_ss(w + i);
    const float* vr = v + i * dp;
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_fmadd_ps(wi, _mm256_load_ps(vr + 8 * c), acc[c]);
  }
  for (int c = 0; c < NC; ++c) _mm256_storeu_ps(out + 8 * c, acc[c]);
}

// AccumulateVChunks for 1 <= nc <= 8 chunks.
inline void AccumulateV(int64_t nc, float* out, const float* v, int64_t dp, const float* w,
                        int64_t n) {
  switch (nc) {
    case 1:
      return AccumulateVChunks<1>(out, v, dp, w, n);
    case 2:
      return AccumulateVChunks<2>(out, v, dp, w, n);
    case 3:
      return AccumulateVChunks<3>(out, v, dp, w, n);
    case 4:
      return AccumulateVChunks<4>(out, v, dp, w, n);
    case 5:
      return AccumulateVChunks<5>(out, v, dp, w, n);
    case 6:
      return AccumulateVChunks<6>(out, v, dp, w, n);
    case 7:
      return AccumulateVChunks<7>(out, v, dp, w, n);
    default:
      return AccumulateVChunks<8>(out, v, dp, w, n);
  }
}

// Per head j < n_heads, from the tile's scores w[j][0, n): the largest score m[j] (exact in any
// order), the weights w[j][i] = exp(w[j][i] - m[j]) in place (zero past n), and their sum l[j] as a
// fixed tree over four 8-lane vectors.
inline void TileSoftmax(int n_heads, int64_t n, float (*w)[kTile], float* m, float* l) {
  // Weights past the tile's last key: -inf for the maximum, zero after the exponential.
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256 valid[kTile / 8];
  for (int64_t c = 0; c < kTile / 8; ++c) {
    valid[c] = _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - 8 * c)), lane));
  }
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  for (int j = 0; j < n_heads; ++j) {
    __m256 mx = neg_inf;
    for (int64_t c = 0; c < kTile / 8; ++c)
      mx = _mm256_max_ps(mx, _mm256_blendv_ps(neg_inf, _mm256_load_ps(&w[j][8 * c]), valid[c]));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    m[j] = _mm_cvtss_f32(m4);
    const __m256 mv = _mm256_set1_ps(m[j]);
    __m256 e4[kTile / 8];
    for (int64_t c = 0; c < kTile / 8; ++c) {
      e4[c] = _mm256_and_ps(Exp(_mm256_sub_ps(_mm256_load_ps(&w[j][8 * c]), mv)), valid[c]);
      _mm256_store_ps(&w[j][8 * c], e4[c]);
    }
    l[j] = HSum(_mm256_add_ps(_mm256_add_ps(e4[0], e4[1]), _mm256_add_ps(e4[2], e4[3])));
  }
}

// A tile's contribution to n_heads query heads of one kv head, on its own: per head j, the
// tile's largest score m[j], the weights w_i = exp(s_i - m[j]) and their sum l[j], and
// os[j * dp + (0, d)] = sum_i w_i V_i. q[j]: head j's query, dp floats (zeros past d when
// d < dp). The tile's K and V rows are converted to f32 once, into tiles on the stack that every
// head reads (d rounded up to 8 lanes, dp; zeros past d). These operations define the bits of
// every path (TilePartials below, SharedTilePartials); this kernel runs them where d % 8 != 0.
//
// Scores: per head, a block of 8 keys has one accumulator each over the head's 8-lane chunks of
// dims, reduced by Sum8x8. The maximum (exact in any order); the weights' sum as a fixed tree
// over four 8-lane vectors (weights past the tile's last key are zero); each 8-lane chunk of os
// sums the weighted V rows in key order. A head's results do not depend on the other heads of
// the call.
void TilePartialsConverted(const float* const* q, int n_heads, int64_t d, int64_t dp,
                           const uint16_t* const* k_rows, const uint16_t* const* v_rows, int64_t n,
                           float scale, float* m, float* l, float* os) {
  const int64_t d8 = d & ~int64_t{7};
  // Rows of dp floats, packed (a fixed stride of kMaxHeadDim would put the rows of a tile in the
  // same few cache sets).
  alignas(32) float kf[kKeyBlock * kMaxHeadDim];
  alignas(32) float vf[kTile * kMaxHeadDim];
  alignas(32) float w[kAttentionMaxHeads][kTile];
  const __m256 sv = _mm256_set1_ps(scale);
  // Scores q_j . K_i, 8 keys at a time (a partial block's missing keys are zero rows).
  for (int64_t i0 = 0; i0 < n; i0 += kKeyBlock) {
    for (int64_t i = 0; i < kKeyBlock; ++i) {
      float* row = kf + i * dp;
      if (i0 + i >= n) {
        for (int64_t e = 0; e < dp; e += 8) _mm256_store_ps(row + e, _mm256_setzero_ps());
        continue;
      }
      const uint16_t* kr = k_rows[i0 + i];
      int64_t e = 0;
      for (; e < d8; e += 8) _mm256_store_ps(row + e, LoadF16(kr + e));
      for (; e < dp; ++e) row[e] = e < d ? F16One(kr[e]) : 0.0f;
    }
    for (int j = 0; j < n_heads; ++j) {
      __m256 acc[kKeyBlock];
      for (int i = 0; i < kKeyBlock; ++i) acc[i] = _mm256_setzero_ps();
      for (int64_t e = 0; e < dp; e += 8) {
        const __m256 qv = _mm256_loadu_ps(q[j] + e);
        for (int i = 0; i < kKeyBlock; ++i)
          acc[i] = _mm256_fmadd_ps(qv, _mm256_load_ps(kf + i * dp + e), acc[i]);
      }
      _mm256_store_ps(&w[j][i0], _mm256_mul_ps(Sum8x8(acc), sv));
    }
  }
  // V rows of the tile, converted once for all heads.
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t* vr = v_rows[i];
    float* row = vf + i * dp;
    int64_t e = 0;
    for (; e < d8; e += 8) _mm256_store_ps(row + e, LoadF16(vr + e));
    for (; e < d; ++e) row[e] = F16One(vr[e]);
  }
  TileSoftmax(n_heads, n, w, m, l);
  for (int j = 0; j < n_heads; ++j) {
    float* o = os + j * dp;
    for (int64_t e0 = 0; e0 < d8; e0 += 64) {
      AccumulateV((d8 - e0 < 64 ? d8 - e0 : 64) / 8, o + e0, vf + e0, dp, w[j], n);
    }
    for (int64_t e = d8; e < d; ++e) {
      float acc = 0.0f;
      for (int64_t i = 0; i < n; ++i) acc = __builtin_fmaf(w[j][i], vf[i * dp + e], acc);
      o[e] = acc;
    }
  }
}

// TilePartialsConverted's results, bit for bit, for d % 8 == 0 and NH <= 4 heads, without the f32
// copies of the tile: each 8-value chunk of a K or V row is converted in a register and used there
// by every head. A tile of 32 keys on one Zen 4 core (this file's code in a stand-alone timing
// loop, K and V in L2): d = 64 x 3 heads 0.64 -> 0.38 us, d = 128 x 4 heads 1.55 -> 0.98, d = 64
// x 1 head 0.35 -> 0.17. Per head and key the score's lanes sum over the chunks in order and reduce
// in Sum8x8's order (Sum4x8 below); each lane of os sums the weighted V values in key order, from
// zero: the same operations as the converting kernel. CG: chunks of V per pass (NH x CG
// accumulators).
//
// Lane k of the result is key k's score sum: acc[k]'s lanes added as ((l0 + l1) + (l2 + l3)) +
// ((l4 + l5) + (l6 + l7)), as Sum8x8 adds them.
inline __m128 Sum4x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

// w[j][i0, i0 + 4) = scale * q_j . K_i for NH heads; keys past n score 0 (their rows are not read).
// Four keys' sums for 3 or 4 heads are 12 or 16 accumulators, beside the 4 converted K rows and a
// query: more than AVX2's 16 vector registers, and the compiler kept some on the stack, a store
// and a load per multiply-add. Those heads take the keys two at a time instead (Scores2x2), each
// key's sum the same chain in the same order: the same bits.
template <int NH>
inline void Scores2x2(const float* const* q, int64_t d, const uint16_t* const* k_rows, int64_t i0,
                      __m128 scale, float (*w)[kTile]) {
  alignas(32) float pair[NH][8];  // hadd of the first two keys' sums, as Sum4x8 forms it
  for (int half = 0; half < 2; ++half) {
    __m256 acc[NH][2];
    for (int j = 0; j < NH; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    const uint16_t* r0 = k_rows[i0 + 2 * half];
    const uint16_t* r1 = k_rows[i0 + 2 * half + 1];
    for (int64_t e = 0; e < d; e += 8) {
      const __m256 k0 = LoadF16(r0 + e), k1 = LoadF16(r1 + e);
      for (int j = 0; j < NH; ++j) {
        const __m256 qv = _mm256_loadu_ps(q[j] + e);
        acc[j][0] = _mm256_fmadd_ps(qv, k0, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(qv, k1, acc[j][1]);
      }
    }
    for (int j = 0; j < NH; ++j) {
      const __m256 h = _mm256_hadd_ps(acc[j][0], acc[j][1]);
      if (half == 0) {
        _mm256_store_ps(pair[j], h);
      } else {
        const __m256 u = _mm256_hadd_ps(_mm256_load_ps(pair[j]), h);
        const __m128 sum = _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
        _mm_store_ps(&w[j][i0], _mm_mul_ps(sum, scale));
      }
    }
  }
}

template <int NH>
inline void Scores4(const float* const* q, int64_t d, const uint16_t* const* k_rows, int64_t i0,
                    int64_t n, __m128 scale, float (*w)[kTile]) {
  if constexpr (NH >= 3) {
    if (n - i0 >= 4) return Scores2x2<NH>(q, d, k_rows, i0, scale, w);
  }
  __m256 acc[NH][4];
  for (int j = 0; j < NH; ++j) {
    for (int i = 0; i < 4; ++i) acc[j][i] = _mm256_setzero_ps();
  }
  if (n - i0 >= 4) {
    const uint16_t* r0 = k_rows[i0];
    const uint16_t* r1 = k_rows[i0 + 1];
    const uint16_t* r2 = k_rows[i0 + 2];
    const uint16_t* r3 = k_rows[i0 + 3];
    for (int64_t e = 0; e < d; e += 8) {
      const __m256 k0 = LoadF16(r0 + e), k1 = LoadF16(r1 + e), k2 = LoadF16(r2 + e),
                   k3 = LoadF16(r3 + e);
      for (int j = 0; j < NH; ++j) {
        const __m256 qv = _mm256_loadu_ps(q[j] + e);
        acc[j][0] = _mm256_fmadd_ps(qv, k0, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(qv, k1, acc[j][1]);
        acc[j][2] = _mm256_fmadd_ps(qv, k2, acc[j][2]);
        acc[j][3] = _mm256_fmadd_ps(qv, k3, acc[j][3]);
      }
    }
  } else {
    for (int64_t i = 0; i < n - i0; ++i) {
      const uint16_t* r = k_rows[i0 + i];
      for (int64_t e = 0; e < d; e += 8) {
        const __m256 kv = LoadF16(r + e);
        for (int j = 0; j < NH; ++j)
          acc[j][i] = _mm256_fmadd_ps(_mm256_loadu_ps(q[j] + e), kv, acc[j][i]);
      }
    }
  }
  for (int j = 0; j < NH; ++j) {
    _mm_store_ps(&w[j][i0], _mm_mul_ps(Sum4x8(acc[j][0], acc[j][1], acc[j][2], acc[j][3]), scale));
  }
}

// os[j * dp + 8 (c0 + c) + (0, 8)] for c < CG = sum over keys i < n, in order, of w[j][i] * V_i.
template <int NH, int CG>
inline void WeightedV(const uint16_t* const* v_rows, int64_t n, int64_t c0, const float (*w)[kTile],
                      float* os, int64_t dp) {
  __m256 acc[NH][CG];
  for (int j = 0; j < NH; ++j) {
    for (int c = 0; c < CG; ++c) acc[j][c] = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t* r = v_rows[i] + 8 * c0;
    __m256 wi[NH];
    for (int j = 0; j < NH; ++j) wi[j] = _mm256_broadcast_ss(&w[j][i]);
    for (int c = 0; c < CG; ++c) {
      const __m256 v = LoadF16(r + 8 * c);
      for (int j = 0; j < NH; ++j) acc[j][c] = _mm256_fmadd_ps(wi[j], v, acc[j][c]);
    }
  }
  for (int j = 0; j < NH; ++j) {
    for (int c = 0; c < CG; ++c) _mm256_storeu_ps(os + j * dp + 8 * (c0 + c), acc[j][c]);
  }
}

// CG by measurement (same loop): 8 for one head (d = 128: 0.31 us per tile against 0.34 with
// 4), 4 for 2 and 3 heads (3 x 64: 0.38 against 0.41 with 2), 2 for 4 heads (4 x 128: 0.98
// against 1.13 with 1; 4 x 64: 0.54 against 0.61 with 4).
constexpr int VChunksPerPass(int nh) { return nh == 1 ? 8 : (nh <= 3 ? 4 : 2); }

// The rows of the tile a thread computes next (n cache rows k[i] / v[i]; the part at `offset`
// values, the same kv head's), which the in-register kernel requests as it scores the current
// one: the rows of four keys per four keys scored. A decode thread's K/V stream is then a few
// requests at a time, issued while it computes (a whole tile's requests at once, or several
// tiles', lost some and stalled the thread until the rest arrived). Empty: nothing to request.
struct NextRows {
  const uint16_t* const* k = nullptr;
  const uint16_t* const* v = nullptr;
  int64_t n = 0;
  int64_t offset = 0;
};

template <int NH, int CG = VChunksPerPass(NH)>
void TilePartialsInRegisters(const float* const* q, int64_t d, int64_t dp,
                             const uint16_t* const* k_rows, const uint16_t* const* v_rows,
                             int64_t n, float scale, float* m, float* l, float* os,
                             const NextRows& next) {
  alignas(32) float w[NH][kTile];
  const __m128 sv = _mm_set1_ps(scale);
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(uint16_t));
  for (int64_t i0 = 0; i0 < kTile; i0 += 4) {
    for (int64_t i = i0; i < i0 + 4 && i < next.n; ++i) {
      Prefetch(next.k[i] + next.offset, row_bytes);
      Prefetch(next.v[i] + next.offset, row_bytes);
    }
    if (i0 < n) {
      Scores4<NH>(q, d, k_rows, i0, n, sv, w);
    } else {
      for (int j = 0; j < NH; ++j) _mm_store_ps(&w[j][i0], _mm_setzero_ps());
    }
  }
  TileSoftmax(NH, n, w, m, l);
  const int64_t nc = d / 8;
  int64_t c0 = 0;
  for (; c0 + CG <= nc; c0 += CG) WeightedV<NH, CG>(v_rows, n, c0, w, os, dp);
  for (; c0 < nc; ++c0) WeightedV<NH, 1>(v_rows, n, c0, w, os, dp);
}

// TilePartialsConverted's contract and bits: heads in groups of at most 4 through the in-register
// kernel where d % 8 == 0 (a head's results do not depend on the other heads of its group), the
// converting kernel otherwise. next: rows the first group requests meanwhile (NextRows; the
// converting kernel requests none).
void TilePartials(const float* const* q, int n_heads, int64_t d, int64_t dp,
                  const uint16_t* const* k_rows, const uint16_t* const* v_rows, int64_t n,
                  float scale, float* m, float* l, float* os, const NextRows& next = {}) {
  if (d % 8 != 0) {
    return TilePartialsConverted(q, n_heads, d, dp, k_rows, v_rows, n, scale, m, l, os);
  }
  for (int j0 = 0; j0 < n_heads;) {
    // 5 heads as 3 + 2, 6 as 3 + 3, 7 as 4 + 3, 8 as 4 + 4.
    const int left = n_heads - j0;
    const int g = left <= 4 ? left : (left == 5 || left == 6 ? 3 : 4);
    float* o = os + j0 * dp;
    const NextRows& nx = j0 == 0 ? next : NextRows{};
    switch (g) {
      case 1:
        TilePartialsInRegisters<1>(q + j0, d, dp, k_rows, v_rows, n, scale, m + j0, l + j0, o, nx);
        break;
      case 2:
        TilePartialsInRegisters<2>(q + j0, d, dp, k_rows, v_rows, n, scale, m + j0, l + j0, o, nx);
        break;
      case 3:
        TilePartialsInRegisters<3>(q + j0, d, dp, k_rows, v_rows, n, scale, m + j0, l + j0, o, nx);
        break;
      default:
        TilePartialsInRegisters<4>(q + j0, d, dp, k_rows, v_rows, n, scale, m + j0, l + j0, o, nx);
        break;
    }
    j0 += g;
  }
}

// Rows that share a tile (AttentionTilePartials with several rows) take it converted once, K
// and V whole, then TilePartials' arithmetic per query over any number of queries, each writing
// its V sums where its partial goes. (TilePartialsConverted keeps its own conversion, 8 keys at
// a time, and its stack outputs: the item kernel measured 5-20% slower in prefill when it took this
// form. Their score and V loops are written twice for the same reason: as always-inline helpers
// shared by both, prefill's items ran 5-8% slower, `attention_rate 64 9 3 512 512 2 30 3` 4.4 ->
// 4.7 ms per layer and `256 4 1 512 512 2 18 3` 6.0 -> 6.4, over 4 interleaved runs. Their softmax,
// TileSoftmax, is one: shared, the shared tiles measured the same or faster, 114-125 -> 114-115
// us per layer at `64 9 3 200 16 2 30` and 117-120 -> 110-114 at `256 4 1 300 8 2 18`.)
constexpr int kSharedQueries = 64;

// The n f16 rows (d values each) as f32 rows of dp floats at dst, zeros past d; rows n .. n_pad
// (n_pad >= n) all zeros.
void ConvertRows(const uint16_t* const* rows, int64_t n, int64_t n_pad, int64_t d, int64_t dp,
                 float* dst) {
  const int64_t d8 = d & ~int64_t{7};
  for (int64_t i = 0; i < n_pad; ++i) {
    float* row = dst + i * dp;
    if (i >= n) {
      for (int64_t e = 0; e < dp; e += 8) _mm256_store_ps(row + e, _mm256_setzero_ps());
      continue;
    }
    const uint16_t* r = rows[i];
    int64_t e = 0;
    for (; e < d8; e += 8) _mm256_store_ps(row + e, LoadF16(r + e));
    for (; e < dp; ++e) row[e] = e < d ? F16One(r[e]) : 0.0f;
  }
}

// One tile's K and V rows as f32 (rows of dp floats, packed; K in whole blocks of kKeyBlock rows,
// zeros past the tile's last key).
struct TileF32 {
  alignas(32) float k[kTile * kMaxHeadDim];
  alignas(32) float v[kTile * kMaxHeadDim];
  int64_t n;

  void Convert(const uint16_t* const* k_rows, const uint16_t* const* v_rows, int64_t n_keys,
               int64_t d, int64_t dp) {
    n = n_keys;
    ConvertRows(k_rows, n, (n + kKeyBlock - 1) / kKeyBlock * kKeyBlock, d, dp, k);
    ConvertRows(v_rows, n, n, d, dp, v);
  }
};

// TilePartials' results for n_q <= kSharedQueries queries from a converted tile, query j's V sums
// into os[j][0, d); the same operations in the same order per query, so the same bits.
void SharedTilePartials(const float* const* q, int n_q, int64_t d, int64_t dp, const TileF32& tf,
                        float scale, float* m, float* l, float* const* os) {
  const int64_t d8 = d & ~int64_t{7};
  const int64_t n = tf.n;
  alignas(32) float w[kSharedQueries][kTile];
  const __m256 sv = _mm256_set1_ps(scale);
  for (int64_t i0 = 0; i0 < n; i0 += kKeyBlock) {
    const float* kf = tf.k + i0 * dp;
    for (int j = 0; j < n_q; ++j) {
      __m256 acc[kKeyBlock];
      for (int i = 0; i < kKeyBlock; ++i) acc[i] = _mm256_setzero_ps();
      for (int64_t e = 0; e < dp; e += 8) {
        const __m256 qv = _mm256_loadu_ps(q[j] + e);
        for (int i = 0; i < kKeyBlock; ++i)
          acc[i] = _mm256_fmadd_ps(qv, _mm256_load_ps(kf + i * dp + e), acc[i]);
      }
      _mm256_store_ps(&w[j][i0], _mm256_mul_ps(Sum8x8(acc), sv));
    }
  }
  TileSoftmax(n_q, n, w, m, l);
  for (int j = 0; j < n_q; ++j) {
    float* o = os[j];
    for (int64_t e0 = 0; e0 < d8; e0 += 64) {
      AccumulateV((d8 - e0 < 64 ? d8 - e0 : 64) / 8, o + e0, tf.v + e0, dp, w[j], n);
    }
    for (int64_t e = d8; e < d; ++e) {
      float acc = 0.0f;
      for (int64_t i = 0; i < n; ++i) acc = __builtin_fmaf(w[j][i], tf.v[i * dp + e], acc);
      o[e] = acc;
    }
  }
}

// The running state (max M, weight sum L, weighted V sum O[0, d)) of one query head, extended by
// a tile's partial (m, l, os): both rescaled to the larger maximum. The first tile (M = -inf,
// L = 0, O = 0) gives exactly (m, l, os).
inline void Fold(float* M, float* L, float* O, float m, float l, const float* os, int64_t d) {
  const int64_t d8 = d & ~int64_t{7};
  const float mn = *M > m ? *M : m;
  const float a = __builtin_expf(*M - mn), b = __builtin_expf(m - mn);
  *M = mn;
  *L = __builtin_fmaf(l, b, *L * a);
  const __m256 av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b);
  int64_t e = 0;
  for (; e < d8; e += 8) {
    _mm256_storeu_ps(O + e, _mm256_fmadd_ps(_mm256_loadu_ps(os + e), bv,
                                            _mm256_mul_ps(_mm256_loadu_ps(O + e), av)));
  }
  for (; e < d; ++e) O[e] = __builtin_fmaf(os[e], b, O[e] * a);
}

// O[0, d) *= 1 / L (a query that saw no key keeps its zeros).
inline void Normalize(float L, float* O, int64_t d) {
  if (L == 0.0f) return;
  const float inv = 1.0f / L;
  const __m256 iv = _mm256_set1_ps(inv);
  const int64_t d8 = d & ~int64_t{7};
  int64_t e = 0;
  for (; e < d8; e += 8) _mm256_storeu_ps(O + e, _mm256_mul_ps(_mm256_loadu_ps(O + e), iv));
  for (; e < d; ++e) O[e] *= inv;
}

// Requests the rows of the n keys of `keys` from k0 on, each `bytes` long from its kv head's part
// at head_off.
void PrefetchTile(const AttentionArgs& a, const AttentionKeys& keys, int64_t k0, int64_t n,
                  int64_t head_off, int64_t bytes) {
  const uint16_t* k_rows[kTile];
  const uint16_t* v_rows[kTile];
  AttentionTileRows(a, keys, k0, n, head_off, k_rows, v_rows);
  for (int64_t i = 0; i < n; ++i) {
    Prefetch(k_rows[i], bytes);
    Prefetch(v_rows[i], bytes);
  }
}

// One work item: each tile's partials, folded into the running state in tile order. Tiles are
// cut from the row's key sequence (AttentionKeysOf), not from slot numbers: a tree row skips its
// masked-out siblings and still forms the tiles of its path as a chain. So a token gets the same
// bits in a decode step, in a prefill chunk and as a node of a token tree, and the same as
// AttentionTilePartials + AttentionFold give it.
void ItemImpl(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads) {
  const int64_t d = a.head_dim;
  const int64_t dp = (d + 7) & ~int64_t{7};
  AttentionKeys keys;
  AttentionKeysOf(a, t, &keys);
  const int64_t n_keys = keys.n_run + keys.n_tree;

  alignas(32) float qf[kAttentionMaxHeads * kMaxHeadDim];
  alignas(32) float os[kAttentionMaxHeads * kMaxHeadDim];
  const float* q[kAttentionMaxHeads];
  float* o[kAttentionMaxHeads];
  float M[kAttentionMaxHeads], L[kAttentionMaxHeads], m[kAttentionMaxHeads], l[kAttentionMaxHeads];
  for (int j = 0; j < n_heads; ++j) {
    const float* qr = a.q + t * a.q_stride + (h_begin + j) * d;
    for (int64_t e = 0; e < dp; ++e) qf[j * dp + e] = e < d ? qr[e] : 0.0f;
    q[j] = qf + j * dp;
    o[j] = a.out + t * a.out_stride + (h_begin + j) * d;
    for (int64_t e = 0; e < d; ++e) o[j][e] = 0.0f;
    M[j] = -__builtin_inff();
    L[j] = 0.0f;
  }
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(uint16_t));
  const uint16_t* k_rows[kTile];
  const uint16_t* v_rows[kTile];
  for (int64_t k0 = 0; k0 < n_keys; k0 += kTile) {
    const int64_t n = n_keys - k0 < kTile ? n_keys - k0 : kTile;
    // An item reads one kv head's part of each cache row: short runs, strided, in blocks
    // scattered over memory, which the hardware prefetchers follow badly. The next tile's rows
    // are requested while this one is computed.
    if (k0 + kTile < n_keys) {
      const int64_t n_next = n_keys - k0 - kTile < kTile ? n_keys - k0 - kTile : kTile;
      PrefetchTile(a, keys, k0 + kTile, n_next, kvh * d, row_bytes);
    }
    AttentionTileRows(a, keys, k0, n, kvh * d, k_rows, v_rows);
    TilePartials(q, n_heads, d, dp, k_rows, v_rows, n, a.scale, m, l, os);
    for (int j = 0; j < n_heads; ++j) Fold(&M[j], &L[j], o[j], m[j], l[j], os + j * dp, d);
  }
  for (int j = 0; j < n_heads; ++j) Normalize(L[j], o[j], d);
}

// The partials of one tile of kv head kvh (rows k_rows / v_rows, n keys) for every (row, head)
// query of rows[0 .. n_rows), which share the tile: converted once into tf, then SharedTilePartials
// kSharedQueries queries at a time, each writing into its row's partial at parts[r] + tile_off.
void SharedTile(const AttentionArgs& a, const int64_t* rows, int n_rows, int64_t kvh,
                const uint16_t* const* k_rows, const uint16_t* const* v_rows, int64_t n,
                float* const* parts, int64_t tile_off, TileF32& tf) {
  const int64_t d = a.head_dim, group = a.n_head / a.n_kv_head;
  tf.Convert(k_rows, v_rows, n, d, d);
  const float* q[kSharedQueries];
  float* os[kSharedQueries];
  float m[kSharedQueries], l[kSharedQueries];
  float* p[kSharedQueries];  // query j's partial
  const int64_t n_queries = n_rows * group;
  for (int64_t u0 = 0; u0 < n_queries; u0 += kSharedQueries) {
    const int nq =
        static_cast<int>(n_queries - u0 < kSharedQueries ? n_queries - u0 : kSharedQueries);
    for (int j = 0; j < nq; ++j) {
      const int64_t r = (u0 + j) / group, h = kvh * group + (u0 + j) % group;
      q[j] = a.q + rows[r] * a.q_stride + h * d;
      p[j] = parts[r] + tile_off + h * (d + 2);
      os[j] = p[j] + 2;
    }
    SharedTilePartials(q, nq, d, d, tf, a.scale, m, l, os);
    for (int j = 0; j < nq; ++j) {
      p[j][0] = m[j];
      p[j][1] = l[j];
    }
  }
}

}  // namespace

void AttentionItem(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads) {
  if (a.head_dim > kMaxHeadDim) return scalar::AttentionItem(a, t, kvh, h_begin, n_heads);
  ItemImpl(a, t, kvh, h_begin, n_heads);
}

void AttentionTilePartials(const AttentionArgs& a, const int64_t* rows, int n_rows,
                           int64_t tile_begin, int64_t tile_end, float* const* parts) {
  const int64_t d = a.head_dim, group = a.n_head / a.n_kv_head;
  const int64_t stride = AttentionPartialFloats(a);
  AttentionKeys keys;  // the first row's: the tiles are the same for every row
  AttentionKeysOf(a, rows[0], &keys);
  const int64_t n_keys = keys.n_run + keys.n_tree;
  const uint16_t* k_rows[kTile];
  const uint16_t* v_rows[kTile];
  // One row: TilePartials per group of heads. Several: each tile converted once (TileF32), every
  // (row, head) query of a kv head from it, kSharedQueries at a time.
  const float* q[kAttentionMaxHeads];
  float m[kAttentionMaxHeads], l[kAttentionMaxHeads];
  alignas(32) float os_one[kAttentionMaxHeads * kMaxHeadDim];
  // The converted tile of shared rows: 128 KiB per thread, allocated once (on the stack of a
  // function of its own it measured slower).
  thread_local std::unique_ptr<TileF32> tf;
  if (n_rows > 1 && tf == nullptr) tf.reset(new TileF32);
  // Whole cache rows (every kv head's part), read in order.
  // - Several rows (a verify step's or a prefill block's): the tiles up to kAheadBytes ahead
  //   are requested at the start and as the thread goes, and the next tile again just before
  //   it is needed (some of the early requests are lost).
  // - One row (a decode step): the first two tiles are requested at the start; then the kernel
  //   requests the next tile's rows as it scores the current one (NextRows). Against the
  //   scheme above, `attention_rate ARGS` over 5 alternations, us per layer (range, median):
  //   `64 9 3 576 1 2 120 30` (SmolLM2) 33.7-43.2 (37.3) -> 22.7-35.1 (34.9), `64 9 3 4096 1 2
  //   20 10` 191-256 (225) -> 136-198 (142), `64 32 8 1024 1 2 16 10` (Llama 1B) 132-270 (165)
  //   -> 109-208 (119), `256 4 1 576 1 2 60 20` (Gemma 3) 41.0-48.7 (46.9) -> 29.6-34.2
  //   (30.6); in L2 (`64 9 3 576 1 2 1 1000`) 16.4-17.9 -> 16.0-17.4. The scheme above with the
  //   kernel's requests added measured between (26.5 at 576 keys, median).
  constexpr int64_t kAheadBytes = 192 * 1024;
  const int64_t all_bytes = a.n_kv_head * d * static_cast<int64_t>(sizeof(uint16_t));
  const int64_t ahead = std::max<int64_t>(1, kAheadBytes / (2 * kTile * all_bytes));
  // The keys of the tile that starts at key k0.
  const auto tile_keys = [&](int64_t k0) { return n_keys - k0 < kTile ? n_keys - k0 : kTile; };
  // Requests tile `tile`'s rows, found into (kr, vr).
  const auto request = [&](int64_t tile, const uint16_t** kr, const uint16_t** vr) {
    const int64_t k0 = tile * kTile;
    const int64_t n = tile_keys(k0);
    AttentionTileRows(a, keys, k0, n, 0, kr, vr);
    for (int64_t i = 0; i < n; ++i) {
      Prefetch(kr[i], all_bytes);
      Prefetch(vr[i], all_bytes);
    }
  };
  if (n_rows == 1) {
    for (int64_t tile = tile_begin; tile < tile_end && tile <= tile_begin + 1; ++tile) {
      request(tile, k_rows, v_rows);
    }
  } else {
    for (int64_t tile = tile_begin + 1; tile < tile_end && tile <= tile_begin + ahead; ++tile) {
      request(tile, k_rows, v_rows);
    }
  }
  // The current and the next tile's cache rows: kv head 0's part (kv head h's is h * d further),
  // found once per tile (the next tile's when it is requested again, or for the kernel to
  // request).
  const uint16_t* k_base[2][kTile];
  const uint16_t* v_base[2][kTile];
  int cur = 0;
  if (tile_begin < tile_end) {
    const int64_t k0 = tile_begin * kTile;
    AttentionTileRows(a, keys, k0, tile_keys(k0), 0, k_base[0], v_base[0]);
  }
  for (int64_t tile = tile_begin; tile < tile_end; ++tile, cur ^= 1) {
    const int64_t k0 = tile * kTile;
    const int64_t n = tile_keys(k0);
    // The next tile's rows: requested here (several rows), or by the kernel (one row).
    int64_t n_next = 0;
    if (n_rows > 1) {
      if (tile + ahead + 1 < tile_end) request(tile + ahead + 1, k_rows, v_rows);
      if (tile + 1 < tile_end) request(tile + 1, k_base[cur ^ 1], v_base[cur ^ 1]);
    } else if (tile + 1 < tile_end) {
      n_next = tile_keys(k0 + kTile);
      AttentionTileRows(a, keys, k0 + kTile, n_next, 0, k_base[cur ^ 1], v_base[cur ^ 1]);
    }
    const int64_t tile_off = (tile - tile_begin) * stride;
    for (int64_t kvh = 0; kvh < a.n_kv_head; ++kvh) {
      for (int64_t i = 0; i < n; ++i) {
        k_rows[i] = k_base[cur][i] + kvh * d;
        v_rows[i] = v_base[cur][i] + kvh * d;
      }
      if (n_rows == 1) {
        for (int64_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += kAttentionMaxHeads) {
          const int64_t left = (kvh + 1) * group - h0;
          const int nh = static_cast<int>(left < kAttentionMaxHeads ? left : kAttentionMaxHeads);
          for (int j = 0; j < nh; ++j) q[j] = a.q + rows[0] * a.q_stride + (h0 + j) * d;
          // (The kv head's first group of heads requests the next tile's part.)
          const NextRows next = h0 == kvh * group
                                    ? NextRows{k_base[cur ^ 1], v_base[cur ^ 1], n_next, kvh * d}
                                    : NextRows{};
          TilePartials(q, nh, d, d, k_rows, v_rows, n, a.scale, m, l, os_one, next);
          for (int j = 0; j < nh; ++j) {
            float* p = parts[0] + tile_off + (h0 + j) * (d + 2);
            p[0] = m[j];
            p[1] = l[j];
            __builtin_memcpy(p + 2, os_one + j * d, static_cast<size_t>(d) * sizeof(float));
          }
        }
        continue;
      }
      SharedTile(a, rows, n_rows, kvh, k_rows, v_rows, n, parts, tile_off, *tf);
    }
  }
}

void AttentionFold(const AttentionArgs& a, int64_t t, int64_t h, int64_t n_tiles,
                   const float* part) {
  const int64_t d = a.head_dim;
  const int64_t stride = AttentionPartialFloats(a);
  float* o = a.out + t * a.out_stride + h * d;
  for (int64_t e = 0; e < d; ++e) o[e] = 0.0f;
  float M = -__builtin_inff(), L = 0.0f;
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const float* p = part + tile * stride + h * (d + 2);
    Fold(&M, &L, o, p[0], p[1], p + 2, d);
  }
  Normalize(L, o, d);
}

}  // namespace gannet::cpu::avx2
