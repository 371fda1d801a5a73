// Attention over a block-paged f16 KV cache: work split, dispatch, and the scalar kernel.
//
// The kernel follows FlashAttention's online softmax (Dao et al. 2022, section 3.1; Milakov &
// Gimelshein 2018): keys are visited in tiles; per query head a running maximum m and running
// sum l rescale the partial output when a larger score appears, so no [n_tokens, n_kv] score
// matrix is ever formed and the output row itself is the accumulator.
#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_internal.h"
#include "tensor/fp16.h"

namespace gannet::cpu {

int64_t AttentionPartialFloats(const AttentionArgs& a) { return a.n_head * (a.head_dim + 2); }

int64_t AttentionTiles(const AttentionArgs& a, int64_t t) {
  AttentionKeys keys;
  AttentionKeysOf(a, t, &keys);
  return (keys.n_run + keys.n_tree + kAttentionTile - 1) / kAttentionTile;
}

void AttentionKeysOf(const AttentionArgs& a, int64_t t, AttentionKeys* keys) {
  const int64_t pos = a.q_pos[t];
  const int64_t lo = a.window > 0 ? std::max<int64_t>(0, pos - a.window + 1) : 0;
  keys->first = lo;
  keys->n_tree = 0;
  if (a.tree_mask == nullptr) {
    const int64_t hi = std::min<int64_t>(pos, a.n_kv - 1);  // inclusive
    keys->n_run = std::max<int64_t>(0, hi + 1 - lo);
    return;
  }
  keys->n_run = std::max<int64_t>(0, std::min(a.tree_base, a.n_kv) - lo);
  keys->tree_base = a.tree_base;
  const int64_t n_tree = std::min(a.n_tokens, kMaxTreeTokens);
  for (uint64_t bits = a.tree_mask[t]; bits != 0; bits &= bits - 1) {
    const int j = std::countr_zero(bits);
    if (j >= n_tree) break;
    if (a.window > 0 && pos - a.q_pos[j] >= a.window) continue;
    keys->tree_j[keys->n_tree++] = static_cast<int8_t>(j);
  }
}

void AttentionTileRows(const AttentionArgs& a, const AttentionKeys& keys, int64_t k0, int64_t n,
                       int64_t head_off, const uint16_t** k_rows, const uint16_t** v_rows) {
  const int64_t bs = a.kv.block_size;
  const int64_t row_elems = a.n_kv_head * a.head_dim;
  int64_t i = 0;
  if (k0 < keys.n_run) {
    // Block and slot of the first key by one division, then stepped (a division per key costs
    // as much as a short dot product).
    const int64_t n_run = std::min(n, keys.n_run - k0);
    const int64_t p0 = keys.first + k0;
    int64_t block = p0 / bs, slot = p0 % bs;
    for (; i < n_run; ++i) {
      const int64_t off = slot * row_elems + head_off;
      k_rows[i] = a.kv.k_blocks[block] + off;
      v_rows[i] = a.kv.v_blocks[block] + off;
      if (++slot == bs) {
        slot = 0;
        ++block;
      }
    }
  }
  for (; i < n; ++i) {
    const int64_t p = keys.tree_base + keys.tree_j[k0 + i - keys.n_run];
    const int64_t off = (p % bs) * row_elems + head_off;
    k_rows[i] = a.kv.k_blocks[p / bs] + off;
    v_rows[i] = a.kv.v_blocks[p / bs] + off;
  }
}

namespace scalar {
namespace {

constexpr int64_t kTile = 32;

}  // namespace

void AttentionItem(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads) {
  const int64_t d = a.head_dim;
  AttentionKeys keys;
  AttentionKeysOf(a, t, &keys);
  const int64_t n_keys = keys.n_run + keys.n_tree;

  const float* q[kAttentionMaxHeads];
  float* o[kAttentionMaxHeads];
  float m[kAttentionMaxHeads], l[kAttentionMaxHeads];
  float w[kAttentionMaxHeads][kTile];  // scores, then softmax weights, of the current tile
  for (int j = 0; j < n_heads; ++j) {
    q[j] = a.q + t * a.q_stride + (h_begin + j) * d;
    o[j] = a.out + t * a.out_stride + (h_begin + j) * d;
    std::fill(o[j], o[j] + d, 0.0f);
    m[j] = -INFINITY;
    l[j] = 0.0f;
  }
  const uint16_t* k_rows[kTile];
  const uint16_t* v_rows[kTile];
  for (int64_t k0 = 0; k0 < n_keys; k0 += kTile) {
    const int64_t n = std::min(kTile, n_keys - k0);
    AttentionTileRows(a, keys, k0, n, kvh * d, k_rows, v_rows);
    // Scores: each K row is converted once and shared by the group's query heads.
    for (int64_t i = 0; i < n; ++i) {
      float acc[kAttentionMaxHeads] = {};
      for (int64_t e = 0; e < d; ++e) {
        const float k = F16ToF32(k_rows[i][e]);
        for (int j = 0; j < n_heads; ++j) acc[j] += q[j][e] * k;
      }
      for (int j = 0; j < n_heads; ++j) w[j][i] = acc[j] * a.scale;
    }
    // Online softmax update, then o = o * correction + sum_i w_i V_i.
    for (int j = 0; j < n_heads; ++j) {
      float tile_max = w[j][0];
      for (int64_t i = 1; i < n; ++i) tile_max = std::max(tile_max, w[j][i]);
      const float m_new = std::max(m[j], tile_max);
      const float corr = std::exp(m[j] - m_new);
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        w[j][i] = std::exp(w[j][i] - m_new);
        sum += w[j][i];
      }
      l[j] = l[j] * corr + sum;
      m[j] = m_new;
      if (corr != 1.0f) {
        for (int64_t e = 0; e < d; ++e) o[j][e] *= corr;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t e = 0; e < d; ++e) {
        const float v = F16ToF32(v_rows[i][e]);
        for (int j = 0; j < n_heads; ++j) o[j][e] += w[j][i] * v;
      }
    }
  }
  for (int j = 0; j < n_heads; ++j) {
    if (l[j] == 0.0f) continue;  // no visible key: the row stays zero
    const float inv = 1.0f / l[j];
    for (int64_t e = 0; e < d; ++e) o[j][e] *= inv;
  }
}

}  // namespace scalar

namespace {

// The most floats of tile partials a split by tiles may hold (16 MiB); past that, the items.
constexpr int64_t kMaxPartialFloats = int64_t{4} << 20;
// The most rows a split by tiles takes when they are not few (a token tree's, a short chunk's):
// then only where some rows share tiles.
constexpr int64_t kMaxSharingRows = kMaxTreeTokens;

// Few query rows over many keys (decode), or rows that share key tiles (the nodes of a token
// tree, a short chunk: the same first key, and tiles inside each one's run): the key tiles are
// shared out, each thread a contiguous run of them weighed by the rows that read them, and their
// partials for every query head computed apart (avx2::AttentionTilePartials: a shared tile's K and
// V rows converted once for all its rows), then folded per (row, head) in tile order. A thread
// then reads whole cache rows in order, and every thread has a share whatever the number of heads.
// Same bits as the items (ops_internal.h). False where it does not apply.
bool SplitByTiles(ThreadPool& pool, const AttentionArgs& a, bool few) {
  if (a.head_dim % 8 != 0 || a.head_dim > kAttentionMaxHeadDim) return false;
  // (Past kMaxSharingRows even few rows, as on a many-core machine, take the head split.)
  if (a.n_tokens > kMaxSharingRows) return false;
  const int64_t n_rows = a.n_tokens;
  // The calling thread's buffers (the pool's threads reach them through these references: a
  // thread_local named inside the lambdas would be each thread's own).
  thread_local std::vector<int64_t> first_buffer;
  thread_local std::vector<float> part_buffer;
  std::vector<int64_t>& first = first_buffer;  // row t's first tile in the flattened sequence
  std::vector<float>& part = part_buffer;
  first.resize(static_cast<size_t>(n_rows) + 1);
  first[0] = 0;
  // Groups of rows with the same first key, in order of their first row: tiles [0, shared) lie in
  // the run of each of them (a group of one shares nothing).
  struct Group {
    int64_t key_first = 0, shared = 0;
    int n = 0;
    int64_t rows[kMaxSharingRows];
  };
  thread_local std::vector<Group> group_buffer;
  std::vector<Group>& groups = group_buffer;
  groups.clear();
  int64_t row_shared[kMaxSharingRows] = {};  // tiles row t reads in its group's shared units
  bool any_shared = false;
  for (int64_t t = 0; t < n_rows; ++t) {
    AttentionKeys keys;
    AttentionKeysOf(a, t, &keys);
    first[t + 1] = first[t] + (keys.n_run + keys.n_tree + kAttentionTile - 1) / kAttentionTile;
    const int64_t run_tiles = keys.n_run / kAttentionTile;
    Group* g = nullptr;
    for (Group& h : groups) {
      if (h.key_first == keys.first) g = &h;
    }
    if (g == nullptr) {
      g = &groups.emplace_back();
      g->key_first = keys.first;
      g->shared = run_tiles;
    }
    g->rows[g->n++] = t;
    g->shared = std::min(g->shared, run_tiles);
  }
  for (Group& g : groups) {
    if (g.n < 2) g.shared = 0;
    for (int r = 0; r < g.n; ++r) row_shared[g.rows[r]] = g.shared;
    any_shared = any_shared || g.shared > 0;
  }
  if (!few && !any_shared) return false;
  const int64_t total = first[n_rows];
  const int64_t stride = AttentionPartialFloats(a);
  if (total < 2 * pool.size() || total * stride > kMaxPartialFloats) return false;
  if (static_cast<int64_t>(part.size()) < total * stride) part.resize(total * stride);
  // The work in units of one row's tile: the groups' shared tiles (each weighs its group's rows),
  // then each row's own tiles.
  int64_t cost = 0;
  for (const Group& g : groups) cost += g.shared * g.n;
  for (int64_t t = 0; t < n_rows; ++t) cost += first[t + 1] - first[t] - row_shared[t];
  pool.Run([&](int ti, int nt) {
    const int64_t u0 = cost * ti / nt, u1 = cost * (ti + 1) / nt;
    int64_t at = 0;  // cost before the current run of units
    float* parts[kMaxSharingRows];
    // Shared tiles [k0, k1) of a group whose first tile starts at `at`: the ones whose start lies
    // in [u0, u1).
    for (const Group& g : groups) {
      if (g.shared == 0) continue;
      const int64_t k0 = std::clamp<int64_t>((u0 - at + g.n - 1) / g.n, 0, g.shared);
      const int64_t k1 = std::clamp<int64_t>((u1 - at + g.n - 1) / g.n, 0, g.shared);
      if (k0 < k1) {
        for (int r = 0; r < g.n; ++r) parts[r] = part.data() + (first[g.rows[r]] + k0) * stride;
        avx2::AttentionTilePartials(a, g.rows, g.n, k0, k1, parts);
      }
      at += g.shared * g.n;
    }
    for (int64_t t = 0; t < n_rows; ++t) {
      const int64_t own = first[t + 1] - first[t] - row_shared[t];
      const int64_t b = std::max(u0, at), e = std::min(u1, at + own);
      if (b < e) {
        const int64_t k0 = row_shared[t] + (b - at), k1 = row_shared[t] + (e - at);
        parts[0] = part.data() + (first[t] + k0) * stride;
        avx2::AttentionTilePartials(a, &t, 1, k0, k1, parts);
      }
      at += own;
    }
  });
  const int64_t units = n_rows * a.n_head;
  pool.Run([&](int ti, int nt) {
    for (int64_t u = units * ti / nt; u < units * (ti + 1) / nt; ++u) {
      const int64_t t = u / a.n_head;
      avx2::AttentionFold(a, t, u % a.n_head, first[t + 1] - first[t],
                          part.data() + first[t] * stride);
    }
  });
  return true;
}

}  // namespace

namespace {

AttentionItemFn ItemFn(Isa isa) {
  return isa == Isa::kScalar ? &scalar::AttentionItem : &avx2::AttentionItem;
}

// Item `it` of the split into whole GQA groups (or slices of at most kAttentionMaxHeads heads of
// one), `subs` items per (token, kv head) pair: each K/V row loaded once per item.
void RunGroupItem(const AttentionArgs& a, AttentionItemFn item_fn, int64_t it) {
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t per_item = std::min<int64_t>(group, kAttentionMaxHeads);
  const int64_t subs = (group + per_item - 1) / per_item;
  const int64_t sub = it % subs;
  const int64_t pair = it / subs;
  const int64_t t = pair / a.n_kv_head;
  const int64_t kvh = pair % a.n_kv_head;
  const int64_t h_begin = kvh * group + sub * per_item;
  const int64_t nh = std::min(per_item, group - sub * per_item);
  item_fn(a, t, kvh, h_begin, static_cast<int>(nh));
}

int64_t GroupItems(const AttentionArgs& a) {
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t per_item = std::min<int64_t>(group, kAttentionMaxHeads);
  return a.n_tokens * a.n_kv_head * ((group + per_item - 1) / per_item);
}

// A prefill chunk of more than kMaxSharingRows rows, in consecutive blocks of at most that many
// rows, each a split by tiles of its own: a block's rows share their key tiles (the same first
// key without a window), so each tile's K and V are converted once for all of them, where the
// items convert them once per (row, kv head). Two threads, ms per layer, items -> blocks (two
// alternations): `attention_rate 64 9 3 512 512 2 30 3` (SmolLM2) 3.60 -> 2.72-2.74, `256 4 1
// 512 512 2 18 3` (Gemma 3) 4.45-4.50 -> 4.06, `64 32 8 512 512 2 16 3` (Llama 1B) 12.5-12.6 ->
// 9.8-10.1, and 2048 rows from memory (`64 9 3 2048 2048 2 30 1`) 58-63 -> 42-57; blocks of 32
// rows measured between. A block goes to the items when its rows share no tile (a window gives
// each row its own first key) or its partials would pass kMaxPartialFloats; the bits are the
// items' either way.
bool SplitByTilesInBlocks(ThreadPool& pool, const AttentionArgs& a, AttentionItemFn item_fn) {
  if (a.head_dim % 8 != 0 || a.head_dim > kAttentionMaxHeadDim) return false;
  for (int64_t r0 = 0; r0 < a.n_tokens; r0 += kMaxSharingRows) {
    AttentionArgs b = a;
    b.n_tokens = std::min(kMaxSharingRows, a.n_tokens - r0);
    b.q = a.q + r0 * a.q_stride;
    b.q_pos = a.q_pos + r0;
    b.out = a.out + r0 * a.out_stride;
    if (!SplitByTiles(pool, b, false)) {
      pool.Run([&](int ti, int nt) {
        const int64_t n_items = GroupItems(b);
        for (int64_t it = ti; it < n_items; it += nt) RunGroupItem(b, item_fn, it);
      });
    }
  }
  return true;
}

}  // namespace

void AttentionPrefetch(const AttentionArgs& a) {
  // At most this many bytes of K and V rows: a sequence's worth of a decode step's keys, well
  // within a core's L2 beside the current sequence's.
  constexpr int64_t kBudgetBytes = 192 * 1024;
  const int64_t row_bytes = a.n_kv_head * a.head_dim * static_cast<int64_t>(sizeof(uint16_t));
  const uint16_t* k_rows[kAttentionTile];
  const uint16_t* v_rows[kAttentionTile];
  int64_t left = kBudgetBytes;
  for (int64_t t = 0; t < a.n_tokens && left > 0; ++t) {
    AttentionKeys keys;
    AttentionKeysOf(a, t, &keys);
    const int64_t n_keys = keys.n_run + keys.n_tree;
    for (int64_t k0 = 0; k0 < n_keys && left > 0; k0 += kAttentionTile) {
      const int64_t n = std::min<int64_t>(kAttentionTile, n_keys - k0);
      AttentionTileRows(a, keys, k0, n, 0, k_rows, v_rows);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t b = 0; b < row_bytes; b += 64) {
          __builtin_prefetch(reinterpret_cast<const char*>(k_rows[i]) + b, 0, 2);
          __builtin_prefetch(reinterpret_cast<const char*>(v_rows[i]) + b, 0, 2);
        }
      }
      left -= 2 * n * row_bytes;
    }
  }
}

void AttentionOnThisThread(const AttentionArgs& a, Isa isa) {
  if (a.n_tokens <= 0 || a.n_head <= 0) return;
  const AttentionItemFn item_fn = ItemFn(isa);
  const int64_t n_items = GroupItems(a);
  for (int64_t it = 0; it < n_items; ++it) RunGroupItem(a, item_fn, it);
}

void Attention(ThreadPool& pool, const AttentionArgs& a, Isa isa) {
  if (a.n_tokens <= 0 || a.n_head <= 0) return;
  const AttentionItemFn item_fn = ItemFn(isa);
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t n_pairs = a.n_tokens * a.n_kv_head;
  const int n_threads = pool.size();
  // One query row (a decode step) always splits by tiles where it can, however many kv heads: a
  // thread then streams whole cache rows, where an item per kv head reads a strided part of each
  // (Llama 3.2 1B's 8 kv heads x 64 dims over 1024 keys, two threads: `attention_rate 64 32 8 1024
  // 1 2 16`, 241-305 us per layer as items, 167-182 by tiles).
  const bool few = a.n_tokens == 1 || n_pairs < 4 * n_threads;
  if (isa != Isa::kScalar && SplitByTiles(pool, a, few)) return;
  if (isa != Isa::kScalar && a.n_tokens > kMaxSharingRows && a.tree_mask == nullptr &&
      SplitByTilesInBlocks(pool, a, item_fn)) {
    return;
  }
  if (n_pairs < 4 * n_threads) {
    // Few (token, kv head) pairs, as in decode: whole groups as items would leave threads idle
    // (three kv heads on two threads: one thread does two groups, the other one). Each thread
    // takes a contiguous share of the (token, query head) pairs instead, cut into items at group
    // boundaries, so the shares differ by at most one head. A K/V row is then read once per item
    // rather than once per group, and the bits are the same: a head's output does not depend on
    // the other heads of its item.
    const int64_t units = a.n_tokens * a.n_head;
    pool.Run([&](int ti, int nt) {
      int64_t u = units * ti / nt;
      const int64_t end = units * (ti + 1) / nt;
      while (u < end) {
        const int64_t t = u / a.n_head, h = u % a.n_head;
        const int64_t kvh = h / group;
        const int64_t nh = std::min<int64_t>({end - u, (kvh + 1) * group - h, kAttentionMaxHeads});
        item_fn(a, t, kvh, h, static_cast<int>(nh));
        u += nh;
      }
    });
    return;
  }
  // Items of a whole GQA group each, dealt round-robin: with causal masking later tokens cost
  // more, so contiguous chunks would leave the first thread idle early in prefill.
  const int64_t n_items = GroupItems(a);
  pool.Run([&](int ti, int nt) {
    for (int64_t it = ti; it < n_items; it += nt) RunGroupItem(a, item_fn, it);
  });
}

}  // namespace gannet::cpu
