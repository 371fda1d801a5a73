// AVX2 + FMA + F16C attention kernel (one work item; the split and dispatch are in
// attention.cc). Same online-softmax algorithm as scalar::AttentionItem, over the same key
// sequence and tiles (AttentionKeysOf / AttentionTileRows); K and V rows are converted from f16
// with vcvtph2ps once per tile for all the item's heads (ItemImpl says how the sums are ordered).
//
// Compiled with -mavx2 -mfma -mf16c: everything used here is local (internal linkage) or a
// compiler builtin, never an inline function from a shared header (see ops_internal.h).
#include <immintrin.h>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_internal.h"

namespace gannet::cpu::avx2 {
namespace {

constexpr int64_t kTile = 32;

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
constexpr int64_t kMaxHeadDim = 512;
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

// out[0, 8 NC) = out * cv + sum over i < n of w[i] * v[i * dp + (0, 8 NC)], the keys in order;
// NC accumulators in registers (a count known at compile time).
template <int NC>
inline void AccumulateVChunks(float* out, const float* v, int64_t dp, const float* w, int64_t n,
                              __m256 cv) {
  __m256 acc[NC];
  for (int c = 0; c < NC; ++c) acc[c] = _mm256_mul_ps(_mm256_loadu_ps(out + 8 * c), cv);
  for (int64_t i = 0; i < n; ++i) {
    const __m256 wi = _mm256_broadcast_ss(w + i);
    const float* vr = v + i * dp;
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_fmadd_ps(wi, _mm256_load_ps(vr + 8 * c), acc[c]);
  }
  for (int c = 0; c < NC; ++c) _mm256_storeu_ps(out + 8 * c, acc[c]);
}

// AccumulateVChunks for 1 <= nc <= 8 chunks.
inline void AccumulateV(int64_t nc, float* out, const float* v, int64_t dp, const float* w,
                        int64_t n, __m256 cv) {
  switch (nc) {
    case 1:
      return AccumulateVChunks<1>(out, v, dp, w, n, cv);
    case 2:
      return AccumulateVChunks<2>(out, v, dp, w, n, cv);
    case 3:
      return AccumulateVChunks<3>(out, v, dp, w, n, cv);
    case 4:
      return AccumulateVChunks<4>(out, v, dp, w, n, cv);
    case 5:
      return AccumulateVChunks<5>(out, v, dp, w, n, cv);
    case 6:
      return AccumulateVChunks<6>(out, v, dp, w, n, cv);
    case 7:
      return AccumulateVChunks<7>(out, v, dp, w, n, cv);
    default:
      return AccumulateVChunks<8>(out, v, dp, w, n, cv);
  }
}

// The item's heads in turn over each tile of keys; the tile's K and V rows are converted to f32
// once, into zero-padded tiles on the stack that every head of the item reads (d rounded up to
// 8 lanes, dp).
//
// Scores: per head, a block of 8 keys has one accumulator each over the head's 8-lane chunks of
// dims, reduced by Sum8x8; the padding adds zeros. Softmax over the tile: its maximum (exact in
// any order), the weights, their sum as a fixed tree over four 8-lane vectors (weights past the
// tile's last key are zero). Output: per head and 8-lane chunk, o * correction, then each key's
// weighted V row added in key order. None of this depends on how many heads the item holds or
// which other tokens are in the call, so a token gets the same bits in a decode step, in a prefill
// chunk and as a node of a token tree.
void ItemImpl(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads) {
  const int64_t d = a.head_dim;
  const int64_t d8 = d & ~int64_t{7};
  const int64_t dp = (d + 7) & ~int64_t{7};
  AttentionKeys keys;
  AttentionKeysOf(a, t, &keys);
  const int64_t n_keys = keys.n_run + keys.n_tree;

  // Rows of dp floats, packed (a fixed stride of kMaxHeadDim would put the rows of a tile in the
  // same few cache sets).
  alignas(32) float qf[kAttentionMaxHeads * kMaxHeadDim];
  alignas(32) float kf[kKeyBlock * kMaxHeadDim];
  alignas(32) float vf[kTile * kMaxHeadDim];
  alignas(32) float w[kAttentionMaxHeads][kTile];
  float* o[kAttentionMaxHeads];
  float m[kAttentionMaxHeads], l[kAttentionMaxHeads];
  for (int j = 0; j < n_heads; ++j) {
    const float* q = a.q + t * a.q_stride + (h_begin + j) * d;
    for (int64_t e = 0; e < dp; ++e) qf[j * dp + e] = e < d ? q[e] : 0.0f;
    o[j] = a.out + t * a.out_stride + (h_begin + j) * d;
    for (int64_t e = 0; e < d; ++e) o[j][e] = 0.0f;
    m[j] = -__builtin_inff();
    l[j] = 0.0f;
  }
  const __m256 scale = _mm256_set1_ps(a.scale);
  // Row pointers of this tile and the next, in two buffers used in turn.
  const uint16_t* rows[2][2][kTile];
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(uint16_t));
  if (n_keys > 0) {
    AttentionTileRows(a, keys, 0, n_keys < kTile ? n_keys : kTile, kvh * d, rows[0][0], rows[0][1]);
  }
  // Tiles are cut from the row's key sequence (AttentionKeysOf), not from slot numbers: a tree
  // row skips its masked-out siblings and still forms the tiles of its path as a chain.
  for (int64_t k0 = 0, cur = 0; k0 < n_keys; k0 += kTile, cur ^= 1) {
    const int64_t n = n_keys - k0 < kTile ? n_keys - k0 : kTile;
    const uint16_t* const* k_rows = rows[cur][0];
    const uint16_t* const* v_rows = rows[cur][1];
    // An item reads one kv head's part of each cache row: short runs, strided, in blocks
    // scattered over memory, which the hardware prefetchers follow badly (without this, decode
    // read the cache at a few GB/s, waiting on one row after another). The next tile's rows are
    // requested while this one is computed.
    if (k0 + kTile < n_keys) {
      const int64_t n_next = n_keys - k0 - kTile < kTile ? n_keys - k0 - kTile : kTile;
      const uint16_t** next_k = rows[cur ^ 1][0];
      const uint16_t** next_v = rows[cur ^ 1][1];
      AttentionTileRows(a, keys, k0 + kTile, n_next, kvh * d, next_k, next_v);
      for (int64_t i = 0; i < n_next; ++i) {
        Prefetch(next_k[i], row_bytes);
        Prefetch(next_v[i], row_bytes);
      }
    }
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
          const __m256 qv = _mm256_load_ps(qf + j * dp + e);
          for (int i = 0; i < kKeyBlock; ++i)
            acc[i] = _mm256_fmadd_ps(qv, _mm256_load_ps(kf + i * dp + e), acc[i]);
        }
        _mm256_store_ps(&w[j][i0], _mm256_mul_ps(Sum8x8(acc), scale));
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
      const float tile_max = _mm_cvtss_f32(m4);
      const float m_new = m[j] > tile_max ? m[j] : tile_max;
      const float corr = __builtin_expf(m[j] - m_new);
      const __m256 mv = _mm256_set1_ps(m_new);
      __m256 e4[kTile / 8];
      for (int64_t c = 0; c < kTile / 8; ++c) {
        e4[c] = _mm256_and_ps(Exp(_mm256_sub_ps(_mm256_load_ps(&w[j][8 * c]), mv)), valid[c]);
        _mm256_store_ps(&w[j][8 * c], e4[c]);
      }
      const float sum =
          HSum(_mm256_add_ps(_mm256_add_ps(e4[0], e4[1]), _mm256_add_ps(e4[2], e4[3])));
      l[j] = l[j] * corr + sum;
      m[j] = m_new;
      // o_j = o_j * corr + sum_i w_j[i] V_i, in key order, up to 8 chunks of 8 dims at a time.
      const __m256 cv = _mm256_set1_ps(corr);
      for (int64_t e0 = 0; e0 < d8; e0 += 64) {
        const int64_t nc = (d8 - e0 < 64 ? d8 - e0 : 64) / 8;
        AccumulateV(nc, o[j] + e0, vf + e0, dp, w[j], n, cv);
      }
      for (int64_t e = d8; e < d; ++e) {
        float acc = o[j][e] * corr;
        for (int64_t i = 0; i < n; ++i) acc += w[j][i] * vf[i * dp + e];
        o[j][e] = acc;
      }
    }
  }
  for (int j = 0; j < n_heads; ++j) {
    if (l[j] == 0.0f) continue;  // no visible key: the row stays zero
    const float inv = 1.0f / l[j];
    const __m256 iv = _mm256_set1_ps(inv);
    int64_t e = 0;
    for (; e < d8; e += 8) _mm256_storeu_ps(o[j] + e, _mm256_mul_ps(_mm256_loadu_ps(o[j] + e), iv));
    for (; e < d; ++e) o[j][e] *= inv;
  }
}

}  // namespace

void AttentionItem(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads) {
  if (a.head_dim > kMaxHeadDim) return scalar::AttentionItem(a, t, kvh, h_begin, n_heads);
  ItemImpl(a, t, kvh, h_begin, n_heads);
}

}  // namespace gannet::cpu::avx2
