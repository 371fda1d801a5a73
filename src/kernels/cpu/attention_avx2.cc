// AVX2 + FMA + F16C attention kernel (one work item; the split and dispatch are in
// attention.cc). Same online-softmax algorithm as scalar::AttentionItem, over the same key
// sequence and tiles (AttentionKeysOf / AttentionTileRows); K and V rows are converted from f16
// with vcvtph2ps as they are loaded, once per row for all the item's heads.
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

// NH query heads share one kv head. U independent accumulator sets hide FMA latency in the
// score dot products. U sets how a dot product is summed, so it must not depend on how the heads
// were split into work items (which depends on the batch and the thread count): it is chosen from
// the model's group size (U * group <= 8 keeps every accumulator in a register), and an item
// holding part of a group uses its group's U. A token then gets the same bits in a decode step, in
// a prefill chunk and as a node of a token tree.
template <int NH, int U>
void Item(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin) {
  static_assert(NH * U <= 8);
  const int64_t d = a.head_dim;
  const int64_t d8 = d & ~int64_t{7};
  const int64_t du = d - d % (8 * U);
  AttentionKeys keys;
  AttentionKeysOf(a, t, &keys);
  const int64_t n_keys = keys.n_run + keys.n_tree;

  const float* q[NH];
  float* o[NH];
  float m[NH], l[NH];
  alignas(32) float w[NH][kTile] = {};  // lanes past n stay finite
  for (int j = 0; j < NH; ++j) {
    q[j] = a.q + t * a.q_stride + (h_begin + j) * d;
    o[j] = a.out + t * a.out_stride + (h_begin + j) * d;
    for (int64_t e = 0; e < d; ++e) o[j][e] = 0.0f;
    m[j] = -__builtin_inff();
    l[j] = 0.0f;
  }
  const uint16_t* k_rows[kTile];
  const uint16_t* v_rows[kTile];
  // Tiles are cut from the row's key sequence (AttentionKeysOf), not from slot numbers: a tree
  // row skips its masked-out siblings and still forms the tiles of its path as a chain.
  for (int64_t k0 = 0; k0 < n_keys; k0 += kTile) {
    const int64_t n = n_keys - k0 < kTile ? n_keys - k0 : kTile;
    AttentionTileRows(a, keys, k0, n, kvh * d, k_rows, v_rows);
    // Scores q_j . K_i.
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t* kr = k_rows[i];
      __m256 acc[U][NH];
      for (int u = 0; u < U; ++u)
        for (int j = 0; j < NH; ++j) acc[u][j] = _mm256_setzero_ps();
      int64_t e = 0;
      for (; e < du; e += 8 * U) {
        for (int u = 0; u < U; ++u) {
          const __m256 k = LoadF16(kr + e + 8 * u);
          for (int j = 0; j < NH; ++j)
            acc[u][j] = _mm256_fmadd_ps(_mm256_loadu_ps(q[j] + e + 8 * u), k, acc[u][j]);
        }
      }
      for (; e < d8; e += 8) {
        const __m256 k = LoadF16(kr + e);
        for (int j = 0; j < NH; ++j)
          acc[0][j] = _mm256_fmadd_ps(_mm256_loadu_ps(q[j] + e), k, acc[0][j]);
      }
      for (int j = 0; j < NH; ++j) {
        __m256 sum = acc[0][j];
        for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[u][j]);
        float s = HSum(sum);
        for (int64_t r = d8; r < d; ++r) s += q[j][r] * F16One(kr[r]);
        w[j][i] = s * a.scale;
      }
    }
    // Online softmax: new running max, correction of the old partial sums, tile weights.
    __m256 corr[NH];
    for (int j = 0; j < NH; ++j) {
      float tile_max = w[j][0];
      for (int64_t i = 1; i < n; ++i) tile_max = w[j][i] > tile_max ? w[j][i] : tile_max;
      const float m_new = m[j] > tile_max ? m[j] : tile_max;
      const float c = __builtin_expf(m[j] - m_new);
      const __m256 mv = _mm256_set1_ps(m_new);
      for (int64_t i = 0; i < n; i += 8) {
        _mm256_store_ps(&w[j][i], Exp(_mm256_sub_ps(_mm256_load_ps(&w[j][i]), mv)));
      }
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) sum += w[j][i];
      l[j] = l[j] * c + sum;
      m[j] = m_new;
      corr[j] = _mm256_set1_ps(c);
    }
    // o_j = o_j * corr_j + sum_i w_j[i] V_i, U chunks of 8 dims at a time.
    int64_t e = 0;
    for (; e < du; e += 8 * U) {
      __m256 acc[U][NH];
      for (int u = 0; u < U; ++u)
        for (int j = 0; j < NH; ++j)
          acc[u][j] = _mm256_mul_ps(_mm256_loadu_ps(o[j] + e + 8 * u), corr[j]);
      for (int64_t i = 0; i < n; ++i) {
        __m256 v[U];
        for (int u = 0; u < U; ++u) v[u] = LoadF16(v_rows[i] + e + 8 * u);
        for (int j = 0; j < NH; ++j) {
          const __m256 wi = _mm256_broadcast_ss(&w[j][i]);
          for (int u = 0; u < U; ++u) acc[u][j] = _mm256_fmadd_ps(wi, v[u], acc[u][j]);
        }
      }
      for (int u = 0; u < U; ++u)
        for (int j = 0; j < NH; ++j) _mm256_storeu_ps(o[j] + e + 8 * u, acc[u][j]);
    }
    for (; e < d8; e += 8) {
      __m256 acc[NH];
      for (int j = 0; j < NH; ++j) acc[j] = _mm256_mul_ps(_mm256_loadu_ps(o[j] + e), corr[j]);
      for (int64_t i = 0; i < n; ++i) {
        const __m256 v = LoadF16(v_rows[i] + e);
        for (int j = 0; j < NH; ++j)
          acc[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(&w[j][i]), v, acc[j]);
      }
      for (int j = 0; j < NH; ++j) _mm256_storeu_ps(o[j] + e, acc[j]);
    }
    for (; e < d; ++e) {
      for (int j = 0; j < NH; ++j) {
        float acc = o[j][e] * _mm256_cvtss_f32(corr[j]);
        for (int64_t i = 0; i < n; ++i) acc += w[j][i] * F16One(v_rows[i][e]);
        o[j][e] = acc;
      }
    }
  }
  for (int j = 0; j < NH; ++j) {
    if (l[j] == 0.0f) continue;  // no visible key: the row stays zero
    const float inv = 1.0f / l[j];
    const __m256 iv = _mm256_set1_ps(inv);
    int64_t e = 0;
    for (; e < d8; e += 8) _mm256_storeu_ps(o[j] + e, _mm256_mul_ps(_mm256_loadu_ps(o[j] + e), iv));
    for (; e < d; ++e) o[j][e] *= inv;
  }
}

// Items of up to 8 / U heads (the Attention dispatch never gives an item more heads than its
// group has, capped at kAttentionMaxHeads).
template <int U>
void ItemOfGroup(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads) {
  switch (n_heads) {
    case 1:
      return Item<1, U>(a, t, kvh, h_begin);
    case 2:
      return Item<2, U>(a, t, kvh, h_begin);
    default:
      break;
  }
  if constexpr (U <= 2) {
    switch (n_heads) {
      case 3:
        return Item<3, U>(a, t, kvh, h_begin);
      case 4:
        return Item<4, U>(a, t, kvh, h_begin);
      default:
        break;
    }
  }
  if constexpr (U == 1) {
    switch (n_heads) {
      case 5:
        return Item<5, U>(a, t, kvh, h_begin);
      case 6:
        return Item<6, U>(a, t, kvh, h_begin);
      case 7:
        return Item<7, U>(a, t, kvh, h_begin);
      default:
        return Item<8, U>(a, t, kvh, h_begin);
    }
  }
  __builtin_trap();  // more heads than the group has
}

}  // namespace

void AttentionItem(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads) {
  const int64_t group = a.n_head / a.n_kv_head;
  if (group <= 2) return ItemOfGroup<4>(a, t, kvh, h_begin, n_heads);
  if (group <= 4) return ItemOfGroup<2>(a, t, kvh, h_begin, n_heads);
  return ItemOfGroup<1>(a, t, kvh, h_begin, n_heads);
}

}  // namespace gannet::cpu::avx2
