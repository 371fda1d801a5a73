// Conformance of the CPU ops (kernels/cpu/ops.h) for every ISA target this machine runs: each op
// against its scalar reference twin (kernels/cpu/ref.h) on odd shapes, and the twins against
// independent textbook formulas in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ref.h"
#include "tensor/dtype.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

std::vector<Isa> Isas() {
  Isa isas[3];
  const int n = AvailableIsas(isas);
  return std::vector<Isa>(isas, isas + n);
}

std::vector<float> RandomVector(std::mt19937& rng, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

ThreadPool& Pool(int n) {
  static ThreadPool one(1), three(3);
  // Let the workers start before the first Run: ThreadPool's workers read the job generation
  // when they start running, so a Run issued before that can be missed.
  static const bool started = [] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return true;
  }();
  (void)started;
  return n == 1 ? one : three;
}

// ---- KV cache in blocks ------------------------------------------------------------------

// A layer's K/V cache of `capacity` slots in blocks of `block_size`, block table shuffled so
// logical order differs from allocation order. Unwritten slots hold NaN, so a kernel that reads
// a position it must not see produces NaN and fails the comparison.
struct TestCache {
  int64_t block_size = 0, row_elems = 0;
  std::vector<std::unique_ptr<uint16_t[]>> k_store, v_store;
  std::vector<uint16_t*> k_table, v_table;

  TestCache(int64_t capacity, int64_t row_elems_in, int64_t block_size_in, std::mt19937& rng)
      : block_size(block_size_in), row_elems(row_elems_in) {
    const int64_t n_blocks = (capacity + block_size - 1) / block_size;
    const int64_t block_elems = block_size * row_elems;
    for (int64_t b = 0; b < n_blocks; ++b) {
      k_store.emplace_back(new uint16_t[block_elems]);
      v_store.emplace_back(new uint16_t[block_elems]);
      std::fill_n(k_store.back().get(), block_elems, uint16_t{0x7E00});  // f16 NaN
      std::fill_n(v_store.back().get(), block_elems, uint16_t{0x7E00});
    }
    std::vector<int64_t> order(n_blocks);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t b : order) {
      k_table.push_back(k_store[b].get());
      v_table.push_back(v_store[b].get());
    }
  }
  KvView View() const { return {k_table.data(), v_table.data(), block_size}; }
  // Value at position p, element i (f16 bits widened).
  float K(int64_t p, int64_t i) const {
    return F16ToF32(k_table[p / block_size][(p % block_size) * row_elems + i]);
  }
  float V(int64_t p, int64_t i) const {
    return F16ToF32(v_table[p / block_size][(p % block_size) * row_elems + i]);
  }
};

// Writes n_kv random rows through StoreKv, in a scrambled position order.
void FillCache(TestCache& c, int64_t n_kv, std::mt19937& rng) {
  std::vector<float> k = RandomVector(rng, n_kv * c.row_elems);
  std::vector<float> v = RandomVector(rng, n_kv * c.row_elems);
  std::vector<int32_t> pos(n_kv);
  std::iota(pos.begin(), pos.end(), 0);
  std::shuffle(pos.begin(), pos.end(), rng);
  std::vector<float> ks(k.size()), vs(v.size());  // row t holds position pos[t]
  for (int64_t t = 0; t < n_kv; ++t) {
    std::copy_n(&k[pos[t] * c.row_elems], c.row_elems, &ks[t * c.row_elems]);
    std::copy_n(&v[pos[t] * c.row_elems], c.row_elems, &vs[t * c.row_elems]);
  }
  StoreKv(ks.data(), c.row_elems, vs.data(), c.row_elems, n_kv, c.row_elems, pos.data(),
          c.k_table.data(), c.v_table.data(), c.block_size);
}

TEST(StoreKv, MatchesReferenceAndRoundsToNearestEven) {
  std::mt19937 rng(1);
  const int64_t row = 3 * 80;
  TestCache a(40, row, 16, rng), b(40, row, 16, rng);
  std::vector<float> k = RandomVector(rng, 7 * row, -70000.0f, 70000.0f);
  std::vector<float> v = RandomVector(rng, 7 * row, -1e-6f, 1e-6f);  // subnormal halves
  k[0] = 1.0f + 0x1p-11f;                                            // halfway: ties to even -> 1.0
  k[1] = 1.0f + 3 * 0x1p-11f;  // halfway: ties to even -> 1 + 2^-9
  const std::vector<int32_t> pos = {5, 0, 15, 16, 39, 17, 31};
  StoreKv(k.data(), row, v.data(), row, 7, row, pos.data(), a.k_table.data(), a.v_table.data(), 16);
  ref::StoreKv(k.data(), row, v.data(), row, 7, row, pos.data(), b.k_table.data(), b.v_table.data(),
               16);
  for (int64_t t = 0; t < 7; ++t) {
    for (int64_t i = 0; i < row; ++i) {
      const int64_t p = pos[t];
      const uint16_t* ka = a.k_table[p / 16] + (p % 16) * row + i;
      const uint16_t* kb = b.k_table[p / 16] + (p % 16) * row + i;
      const uint16_t* va = a.v_table[p / 16] + (p % 16) * row + i;
      const uint16_t* vb = b.v_table[p / 16] + (p % 16) * row + i;
      ASSERT_EQ(*ka, *kb);
      ASSERT_EQ(*va, *vb);
      ASSERT_EQ(*ka, F32ToF16(k[t * row + i]));
      ASSERT_EQ(*va, F32ToF16(v[t * row + i]));
    }
  }
  EXPECT_EQ(a.k_table[0][5 * row + 0], 0x3C00);
  EXPECT_EQ(a.k_table[0][5 * row + 1], 0x3C02);
}

// ---- attention ---------------------------------------------------------------------------

struct AttnCase {
  int64_t head_dim, n_head, n_kv_head, n_kv, window, n_tokens, block_size;
  float scale;
};

std::string Describe(const AttnCase& c) {
  return "head_dim=" + std::to_string(c.head_dim) + " heads=" + std::to_string(c.n_head) + "/" +
         std::to_string(c.n_kv_head) + " n_kv=" + std::to_string(c.n_kv) +
         " window=" + std::to_string(c.window) + " n_tokens=" + std::to_string(c.n_tokens) +
         " block_size=" + std::to_string(c.block_size) + " scale=" + std::to_string(c.scale);
}

// Queries are the last n_tokens positions of the cache (a decode step, or a prefill chunk
// starting mid-cache), with padded strides.
void CheckAttention(const AttnCase& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c));
  std::mt19937 rng(seed);
  const int64_t row = c.n_kv_head * c.head_dim;
  TestCache cache(c.n_kv + 3, row, c.block_size, rng);
  FillCache(cache, c.n_kv, rng);
  const int64_t q_stride = c.n_head * c.head_dim + 5;
  const int64_t out_stride = c.n_head * c.head_dim + 3;
  std::vector<float> q = RandomVector(rng, c.n_tokens * q_stride);
  std::vector<int32_t> pos(c.n_tokens);
  for (int64_t t = 0; t < c.n_tokens; ++t) pos[t] = static_cast<int32_t>(c.n_kv - c.n_tokens + t);
  AttentionArgs args{.q = q.data(),
                     .q_stride = q_stride,
                     .n_tokens = c.n_tokens,
                     .n_head = c.n_head,
                     .n_kv_head = c.n_kv_head,
                     .head_dim = c.head_dim,
                     .q_pos = pos.data(),
                     .kv = cache.View(),
                     .n_kv = c.n_kv,
                     .window = c.window,
                     .scale = c.scale,
                     .out = nullptr,
                     .out_stride = out_stride};
  std::vector<float> want(c.n_tokens * out_stride, 0.0f);
  args.out = want.data();
  ref::Attention(args);
  for (Isa isa : Isas()) {
    for (int threads : {1, 3}) {
      SCOPED_TRACE(std::string(IsaName(isa)) + " threads=" + std::to_string(threads));
      std::vector<float> got(c.n_tokens * out_stride, 0.0f);
      args.out = got.data();
      Attention(Pool(threads), args, isa);
      for (int64_t t = 0; t < c.n_tokens; ++t) {
        for (int64_t i = 0; i < c.n_head * c.head_dim; ++i) {
          const float w = want[t * out_stride + i], g = got[t * out_stride + i];
          ASSERT_NEAR(g, w, 2e-5f)
              << "t=" << t << " head=" << i / c.head_dim << " dim=" << i % c.head_dim;
        }
      }
    }
  }
}

TEST(Attention, MatchesReferenceOnOddShapes) {
  struct Heads {
    int64_t n_head, n_kv_head;
  };
  uint32_t seed = 100;
  int variant = 0;
  for (int64_t head_dim : {64, 80, 128, 256}) {
    for (Heads h : {Heads{4, 1}, Heads{8, 8}, Heads{32, 8}}) {
      for (int64_t n_kv : {1, 17, 600}) {
        for (int64_t window : {0, 512}) {
          ++variant;
          // Alternate the layout and a sharp score scale (large, changing maxima exercise
          // the online-softmax rescaling); keep the big heads/long-cache prefill cheap.
          const int64_t block_size = variant % 2 ? 16 : n_kv + 3;
          const float scale = (variant % 3 ? 1.0f : 4.0f) / std::sqrt(static_cast<float>(head_dim));
          CheckAttention({head_dim, h.n_head, h.n_kv_head, n_kv, window, 1, block_size, scale},
                         seed++);
          const int64_t chunk = std::min<int64_t>(n_kv, h.n_head >= 32 ? 3 : 7);
          CheckAttention({head_dim, h.n_head, h.n_kv_head, n_kv, window, chunk,
                          variant % 2 ? n_kv + 3 : 16, scale},
                         seed++);
        }
      }
    }
  }
}

TEST(Attention, LongPrefillAcrossTheWindowEdge) {
  // 100 queries at positions 500..599 with window 512: early ones see every key, later ones
  // lose the oldest; tile boundaries fall at different offsets for each query.
  CheckAttention({64, 4, 1, 600, 512, 100, 16, 2.0f}, 7);
  CheckAttention({128, 8, 2, 600, 0, 100, 603, 0.3f}, 8);
}

TEST(Attention, LargeGroupsAndOddHeadDims) {
  // Groups wider than one work item (12 and 16 query heads per kv head), head dims that are
  // not a multiple of the vector width, and a block size that is not a power of two.
  CheckAttention({64, 16, 1, 600, 0, 5, 16, 0.5f}, 12);
  CheckAttention({64, 12, 1, 300, 100, 1, 16, 0.5f}, 13);
  CheckAttention({20, 3, 1, 40, 0, 5, 16, 0.4f}, 14);
  CheckAttention({36, 6, 2, 90, 7, 11, 5, 1.0f}, 15);
  CheckAttention({1, 2, 1, 17, 0, 4, 3, 1.0f}, 16);
}

TEST(Attention, GemmaDecodeShape) {
  // Gemma 3 270M: 4 query heads on one kv head of 256, a decode step on a long cache.
  CheckAttention({256, 4, 1, 2000, 0, 1, 16, 1.0f / 16.0f}, 9);
  CheckAttention({256, 4, 1, 2000, 512, 1, 2003, 1.0f / 16.0f}, 10);
}

TEST(Attention, QueryThatSeesNoKeyGivesZeros) {
  std::mt19937 rng(3);
  TestCache cache(32, 64, 16, rng);
  FillCache(cache, 4, rng);
  std::vector<float> q = RandomVector(rng, 2 * 64);
  const std::vector<int32_t> pos = {-1, 2};
  for (Isa isa : Isas()) {
    std::vector<float> out(2 * 64, 7.0f);
    AttentionArgs args{.q = q.data(),
                       .q_stride = 64,
                       .n_tokens = 2,
                       .n_head = 1,
                       .n_kv_head = 1,
                       .head_dim = 64,
                       .q_pos = pos.data(),
                       .kv = cache.View(),
                       .n_kv = 4,
                       .window = 0,
                       .scale = 0.125f,
                       .out = out.data(),
                       .out_stride = 64};
    Attention(Pool(3), args, isa);
    for (int i = 0; i < 64; ++i) EXPECT_EQ(out[i], 0.0f) << IsaName(isa);
    EXPECT_TRUE(std::isfinite(out[64]));
  }
}

// The reference against a textbook formulation: full [n_tokens, n_kv] score matrix, masked
// entries -inf, softmax in double, explicit GQA head mapping.
TEST(Attention, ReferenceMatchesNaiveSoftmax) {
  std::mt19937 rng(11);
  const int64_t d = 24, n_head = 6, n_kv_head = 2, n_kv = 40, n_tokens = 9, window = 10;
  TestCache cache(n_kv, n_kv_head * d, 16, rng);
  FillCache(cache, n_kv, rng);
  std::vector<float> q = RandomVector(rng, n_tokens * n_head * d, -2.0f, 2.0f);
  std::vector<int32_t> pos(n_tokens);
  for (int64_t t = 0; t < n_tokens; ++t) pos[t] = static_cast<int32_t>(4 * t + 3);
  std::vector<float> got(n_tokens * n_head * d);
  const float scale = 0.7f;
  AttentionArgs args{.q = q.data(),
                     .q_stride = n_head * d,
                     .n_tokens = n_tokens,
                     .n_head = n_head,
                     .n_kv_head = n_kv_head,
                     .head_dim = d,
                     .q_pos = pos.data(),
                     .kv = cache.View(),
                     .n_kv = n_kv,
                     .window = window,
                     .scale = scale,
                     .out = got.data(),
                     .out_stride = n_head * d};
  ref::Attention(args);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kvh = h / (n_head / n_kv_head);
      std::vector<double> s(n_kv);
      for (int64_t p = 0; p < n_kv; ++p) {
        const bool visible = p <= pos[t] && pos[t] - p < window;
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i)
          dot += q[(t * n_head + h) * d + i] * cache.K(p, kvh * d + i);
        s[p] = visible ? scale * dot : -INFINITY;
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double z = 0.0;
      for (double& x : s) z += (x = std::exp(x - mx));
      for (int64_t i = 0; i < d; ++i) {
        double o = 0.0;
        for (int64_t p = 0; p < n_kv; ++p) o += s[p] / z * cache.V(p, kvh * d + i);
        EXPECT_NEAR(got[(t * n_head + h) * d + i], o, 1e-6) << "t=" << t << " h=" << h;
      }
    }
  }
}

// ---- token-tree attention -----------------------------------------------------------------

// A tree of n draft tokens: parent[i] < i, or -1 for a child of the last committed token.
// kChain is one path, kStar all roots, kRandom mixes long runs with branches.
enum class TreeShape { kChain, kStar, kRandom };

std::vector<int32_t> MakeTree(TreeShape shape, int64_t n, std::mt19937& rng) {
  std::vector<int32_t> parent(n);
  for (int64_t i = 0; i < n; ++i) {
    if (shape == TreeShape::kChain) {
      parent[i] = static_cast<int32_t>(i - 1);
    } else if (shape == TreeShape::kStar) {
      parent[i] = -1;
    } else {
      const bool extend = std::uniform_int_distribution<int>(0, 2)(rng) != 0;
      parent[i] =
          extend ? static_cast<int32_t>(i - 1)
                 : std::uniform_int_distribution<int32_t>(-1, static_cast<int32_t>(i) - 1)(rng);
    }
  }
  return parent;
}

// Node i's path from the root down to itself (indices into the tree).
std::vector<int64_t> PathOf(const std::vector<int32_t>& parent, int64_t i) {
  std::vector<int64_t> path;
  for (int64_t j = i; j >= 0; j = parent[j]) path.push_back(j);
  std::reverse(path.begin(), path.end());
  return path;
}

struct TreeCase {
  int64_t head_dim, n_head, n_kv_head, n_past, n_tree, window, block_size;
  TreeShape shape;
};

std::string Describe(const TreeCase& c) {
  return "head_dim=" + std::to_string(c.head_dim) + " heads=" + std::to_string(c.n_head) + "/" +
         std::to_string(c.n_kv_head) + " n_past=" + std::to_string(c.n_past) +
         " n_tree=" + std::to_string(c.n_tree) + " window=" + std::to_string(c.window) +
         " block_size=" + std::to_string(c.block_size) +
         " shape=" + std::to_string(static_cast<int>(c.shape));
}

bool SameBits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float)) == 0;
}

// A tree of draft tokens after n_past committed positions, attended in one call with tree masks,
// against (1) the reference, and (2) every node's path evaluated as an ordinary causal chain in
// another cache (other block size, other block order): the chain's rows, and the node alone as a
// decode step, must give the tree rows' exact bits, for every ISA and thread count.
void CheckTree(const TreeCase& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c));
  std::mt19937 rng(seed);
  const int64_t row = c.n_kv_head * c.head_dim;
  const int64_t width = c.n_head * c.head_dim;
  const int64_t q_stride = width + 5, out_stride = width + 3;
  const std::vector<int32_t> parent = MakeTree(c.shape, c.n_tree, rng);
  std::vector<int32_t> pos(c.n_tree);
  std::vector<uint64_t> mask(c.n_tree);
  for (int64_t i = 0; i < c.n_tree; ++i) {
    const int32_t p = parent[i];
    pos[i] = p < 0 ? static_cast<int32_t>(c.n_past) : pos[p] + 1;
    mask[i] = (p < 0 ? 0 : mask[p]) | uint64_t{1} << i;
  }
  // The committed past and the tree's rows, as f32 (both caches round them the same way).
  const std::vector<float> past_k = RandomVector(rng, c.n_past * row);
  const std::vector<float> past_v = RandomVector(rng, c.n_past * row);
  const std::vector<float> k = RandomVector(rng, c.n_tree * row);
  const std::vector<float> v = RandomVector(rng, c.n_tree * row);
  const std::vector<float> q = RandomVector(rng, c.n_tree * q_stride, -2.0f, 2.0f);
  const float scale = 1.5f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<int32_t> past_pos(c.n_past), slots(c.n_tree);
  std::iota(past_pos.begin(), past_pos.end(), 0);
  std::iota(slots.begin(), slots.end(), static_cast<int32_t>(c.n_past));

  TestCache tree_cache(c.n_past + c.n_tree + 2, row, c.block_size, rng);
  StoreKv(past_k.data(), row, past_v.data(), row, c.n_past, row, past_pos.data(),
          tree_cache.k_table.data(), tree_cache.v_table.data(), c.block_size);
  StoreKv(k.data(), row, v.data(), row, c.n_tree, row, slots.data(), tree_cache.k_table.data(),
          tree_cache.v_table.data(), c.block_size);
  AttentionArgs args{.q = q.data(),
                     .q_stride = q_stride,
                     .n_tokens = c.n_tree,
                     .n_head = c.n_head,
                     .n_kv_head = c.n_kv_head,
                     .head_dim = c.head_dim,
                     .q_pos = pos.data(),
                     .kv = tree_cache.View(),
                     .n_kv = c.n_past + c.n_tree,
                     .window = c.window,
                     .scale = scale,
                     .out = nullptr,
                     .out_stride = out_stride,
                     .tree_mask = mask.data(),
                     .tree_base = c.n_past};
  std::vector<float> want(c.n_tree * out_stride, 0.0f);
  args.out = want.data();
  ref::Attention(args);

  // Every node's path as a chain: positions n_past .. n_past + depth.
  const int64_t chain_block = c.block_size == 1 ? 7 : c.block_size - 1;
  std::vector<std::vector<int64_t>> paths(c.n_tree);
  for (int64_t i = 0; i < c.n_tree; ++i) paths[i] = PathOf(parent, i);
  for (Isa isa : Isas()) {
    for (int threads : {1, 3}) {
      SCOPED_TRACE(std::string(IsaName(isa)) + " threads=" + std::to_string(threads));
      std::vector<float> got(c.n_tree * out_stride, 0.0f);
      args.out = got.data();
      Attention(Pool(threads), args, isa);
      for (int64_t t = 0; t < c.n_tree; ++t) {
        for (int64_t i = 0; i < width; ++i) {
          ASSERT_NEAR(got[t * out_stride + i], want[t * out_stride + i], 2e-5f)
              << "node " << t << " head=" << i / c.head_dim << " dim=" << i % c.head_dim;
        }
      }
      for (int64_t leaf = 0; leaf < c.n_tree; ++leaf) {
        const std::vector<int64_t>& path = paths[leaf];
        const int64_t n = static_cast<int64_t>(path.size());
        TestCache chain(c.n_past + n + 1, row, chain_block, rng);
        std::vector<float> ck(n * row), cv(n * row), cq(n * q_stride);
        std::vector<int32_t> cpos(n);
        for (int64_t r = 0; r < n; ++r) {
          std::copy_n(&k[path[r] * row], row, &ck[r * row]);
          std::copy_n(&v[path[r] * row], row, &cv[r * row]);
          std::copy_n(&q[path[r] * q_stride], q_stride, &cq[r * q_stride]);
          cpos[r] = static_cast<int32_t>(c.n_past + r);
        }
        StoreKv(past_k.data(), row, past_v.data(), row, c.n_past, row, past_pos.data(),
                chain.k_table.data(), chain.v_table.data(), chain_block);
        StoreKv(ck.data(), row, cv.data(), row, n, row, cpos.data(), chain.k_table.data(),
                chain.v_table.data(), chain_block);
        AttentionArgs ca = args;
        ca.q = cq.data();
        ca.n_tokens = n;
        ca.q_pos = cpos.data();
        ca.kv = chain.View();
        ca.n_kv = c.n_past + n;
        ca.tree_mask = nullptr;
        ca.tree_base = 0;
        std::vector<float> chain_out(n * out_stride, 0.0f);
        ca.out = chain_out.data();
        Attention(Pool(threads), ca, isa);
        for (int64_t r = 0; r < n; ++r) {
          ASSERT_TRUE(SameBits(&chain_out[r * out_stride], &got[path[r] * out_stride], width))
              << "node " << path[r] << " differs from row " << r << " of node " << leaf
              << "'s path as a chain";
        }
        // The node alone, as a decode step after its ancestors.
        std::vector<float> one(out_stride, 0.0f);
        ca.q = &cq[(n - 1) * q_stride];
        ca.n_tokens = 1;
        ca.q_pos = &cpos[n - 1];
        ca.out = one.data();
        Attention(Pool(threads), ca, isa);
        ASSERT_TRUE(SameBits(one.data(), &got[leaf * out_stride], width))
            << "node " << leaf << " differs from its decode step";
      }
    }
  }
}

TEST(TreeAttention, MatchesReferenceAndChainsBitForBit) {
  struct Heads {
    int64_t n_head, n_kv_head;
  };
  uint32_t seed = 500;
  int variant = 0;
  for (int64_t head_dim : {1, 20, 36, 64, 80, 256}) {
    for (Heads h : {Heads{4, 1}, Heads{8, 8}, Heads{6, 2}, Heads{12, 1}, Heads{2, 1}}) {
      for (int64_t n_past : {0, 1, 29, 70}) {
        ++variant;
        const TreeShape shape = variant % 5 == 0   ? TreeShape::kStar
                                : variant % 5 == 1 ? TreeShape::kChain
                                                   : TreeShape::kRandom;
        const int64_t window = variant % 3 == 0 ? 0 : (variant % 3 == 1 ? 7 : 40);
        const int64_t block_size = variant % 4 == 0 ? 1 : (variant % 4 == 1 ? 5 : 16);
        const int64_t n_tree = variant % 2 ? 13 : 20;
        CheckTree({head_dim, h.n_head, h.n_kv_head, n_past, n_tree, window, block_size, shape},
                  seed++);
      }
    }
  }
}

TEST(TreeAttention, SixtyFourNodesAcrossKeyTiles) {
  // Paths longer than a key tile (32) after a past that ends mid-tile and mid-block; a window
  // that cuts into the path; the Gemma 3 270M head shape (4 query heads on one kv head of 256).
  CheckTree({64, 4, 1, 45, 64, 0, 16, TreeShape::kChain}, 1);
  CheckTree({64, 4, 1, 45, 64, 50, 16, TreeShape::kRandom}, 2);
  CheckTree({256, 4, 1, 300, 64, 0, 16, TreeShape::kRandom}, 3);
  CheckTree({256, 4, 1, 600, 40, 512, 16, TreeShape::kRandom}, 4);
  CheckTree({128, 16, 2, 33, 64, 20, 3, TreeShape::kStar}, 5);
}

// The reference's tree rows against its own chains: same keys, so the same double sums.
TEST(TreeAttention, ReferenceTreeRowIsItsPath) {
  std::mt19937 rng(21);
  const int64_t d = 16, n_past = 9, n_tree = 6, window = 5;
  // Parents -1, 0, 0, -1, 2, 4.
  const std::vector<int32_t> pos = {9, 10, 10, 9, 11, 12};
  const std::vector<uint64_t> mask = {0b1, 0b11, 0b101, 0b1000, 0b10101, 0b110101};
  TestCache cache(n_past + n_tree, d, 4, rng);
  FillCache(cache, n_past + n_tree, rng);
  std::vector<float> q = RandomVector(rng, n_tree * d);
  std::vector<float> got(n_tree * d);
  AttentionArgs args{.q = q.data(),
                     .q_stride = d,
                     .n_tokens = n_tree,
                     .n_head = 1,
                     .n_kv_head = 1,
                     .head_dim = d,
                     .q_pos = pos.data(),
                     .kv = cache.View(),
                     .n_kv = n_past + n_tree,
                     .window = window,
                     .scale = 0.3f,
                     .out = got.data(),
                     .out_stride = d,
                     .tree_mask = mask.data(),
                     .tree_base = n_past};
  ref::Attention(args);
  // Node 5 (position 12, window 5) sees committed slots 8 and its ancestors 0 (pos 9), 2 (10),
  // 4 (11) and itself: slots 8, 9, 11, 13, 14. Textbook softmax over exactly those.
  const std::vector<int64_t> seen = {8, 9, 11, 13, 14};
  std::vector<double> s;
  for (int64_t p : seen) {
    double dot = 0.0;
    for (int64_t i = 0; i < d; ++i) dot += q[5 * d + i] * cache.K(p, i);
    s.push_back(0.3 * dot);
  }
  const double mx = *std::max_element(s.begin(), s.end());
  double z = 0.0;
  for (double& x : s) z += (x = std::exp(x - mx));
  for (int64_t i = 0; i < d; ++i) {
    double o = 0.0;
    for (size_t r = 0; r < seen.size(); ++r) o += s[r] / z * cache.V(seen[r], i);
    EXPECT_NEAR(got[5 * d + i], o, 1e-6) << i;
  }
}

// ---- RMSNorm -----------------------------------------------------------------------------

TEST(RmsNorm, MatchesReferenceAndFormula) {
  std::mt19937 rng(21);
  for (int64_t rows : {1, 7, 255}) {
    for (int64_t cols : {1, 7, 255, 4097}) {
      const int64_t stride = cols + 3;
      std::vector<float> x = RandomVector(rng, rows * stride, -3.0f, 3.0f);
      std::vector<float> w = RandomVector(rng, cols, 0.5f, 1.5f);
      for (const float* wp :
           {static_cast<const float*>(nullptr), static_cast<const float*>(w.data())}) {
        SCOPED_TRACE("rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
                     (wp ? " weighted" : ""));
        std::vector<float> want(rows * stride);
        ref::RmsNorm(x.data(), stride, wp, 1e-6f, rows, cols, want.data(), stride);
        for (int64_t r = 0; r < rows; ++r) {  // textbook formula in double
          double ss = 0.0;
          for (int64_t i = 0; i < cols; ++i) ss += double{x[r * stride + i]} * x[r * stride + i];
          const double inv = 1.0 / std::sqrt(ss / cols + 1e-6);
          for (int64_t i = 0; i < cols; ++i) {
            const double e = x[r * stride + i] * inv * (wp ? wp[i] : 1.0);
            ASSERT_NEAR(want[r * stride + i], e, 1e-6 * (std::fabs(e) + 1e-3));
          }
        }
        for (Isa isa : Isas()) {
          std::vector<float> got(rows * stride);
          RmsNorm(x.data(), stride, wp, 1e-6f, rows, cols, got.data(), stride, isa);
          std::vector<float> in_place = x;  // out == x
          RmsNorm(in_place.data(), stride, wp, 1e-6f, rows, cols, in_place.data(), stride, isa);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t i = 0; i < cols; ++i) {
              const float e = want[r * stride + i];
              ASSERT_NEAR(got[r * stride + i], e, 4e-6f * std::fabs(e) + 1e-9f) << IsaName(isa);
              ASSERT_EQ(in_place[r * stride + i], got[r * stride + i]) << IsaName(isa);
            }
          }
        }
      }
    }
  }
}

// ---- RoPE --------------------------------------------------------------------------------

// Direct formula in double: angle pos * freq_scale * base^(-2i/n_rot) / ff_i (no YaRN).
void RopeDirect(const RopeArgs& a, const std::vector<float>& in, std::vector<double>& out) {
  out.assign(in.begin(), in.end());
  const int64_t half = a.n_rot / 2;
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t o = t * a.x_stride + h * a.head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const double ff = a.freq_factors ? a.freq_factors[i] : 1.0;
        const double th =
            a.pos[t] * double{a.freq_scale} * std::pow(double{a.base}, -2.0 * i / a.n_rot) / ff;
        const int64_t i0 = a.mode == RopeMode::kNorm ? 2 * i : i;
        const int64_t i1 = a.mode == RopeMode::kNorm ? 2 * i + 1 : i + half;
        const double x0 = in[o + i0], x1 = in[o + i1];
        out[o + i0] = a.attn_factor * (x0 * std::cos(th) - x1 * std::sin(th));
        out[o + i1] = a.attn_factor * (x0 * std::sin(th) + x1 * std::cos(th));
      }
    }
  }
}

TEST(Rope, MatchesReferenceAndDirectFormula) {
  std::mt19937 rng(31);
  struct Cfg {
    RopeMode mode;
    int64_t head_dim, n_rot, n_heads;
    float base, freq_scale;
    bool ff;
  };
  const Cfg cfgs[] = {
      {RopeMode::kNorm, 64, 64, 4, 10000.0f, 1.0f, false},
      {RopeMode::kNorm, 128, 96, 3, 500000.0f, 1.0f, true},     // partial rotation, factors
      {RopeMode::kNeox, 256, 256, 4, 1000000.0f, 1.0f, false},  // Gemma 3 global layer
      {RopeMode::kNeox, 80, 64, 7, 10000.0f, 0.25f, false},     // linear scaling, partial
      {RopeMode::kNeox, 128, 128, 1, 10000.0f, 1.0f, true},
  };
  for (const Cfg& c : cfgs) {
    SCOPED_TRACE("mode=" + std::to_string(static_cast<int>(c.mode)) +
                 " head_dim=" + std::to_string(c.head_dim) + " n_rot=" + std::to_string(c.n_rot));
    const int64_t n_tokens = 7;
    const int64_t stride = c.n_heads * c.head_dim + 2;
    std::vector<float> x = RandomVector(rng, n_tokens * stride);
    std::vector<float> ff = RandomVector(rng, c.n_rot / 2, 1.0f, 8.0f);
    const std::vector<int32_t> pos = {0, 1, 2, 17, 100, 255, 300};
    RopeArgs a{.x = nullptr,
               .x_stride = stride,
               .n_tokens = n_tokens,
               .n_heads = c.n_heads,
               .head_dim = c.head_dim,
               .n_rot = c.n_rot,
               .pos = pos.data(),
               .mode = c.mode,
               .base = c.base,
               .freq_scale = c.freq_scale,
               .freq_factors = c.ff ? ff.data() : nullptr,
               .attn_factor = 1.0f};
    std::vector<float> want = x, got = x;
    a.x = want.data();
    ref::Rope(a);
    a.x = got.data();
    Rope(a);
    std::vector<double> direct;
    RopeDirect(a, x, direct);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t i = 0; i < c.n_heads * c.head_dim; ++i) {
        const int64_t k = t * stride + i;
        ASSERT_EQ(got[k], want[k]) << "t=" << t << " i=" << i;
        // f32 angles: pos * theta_scale^i by repeated multiplication drifts ~1e-7 * i relative.
        ASSERT_NEAR(want[k], direct[k], 2e-4) << "t=" << t << " i=" << i;
        if (i % c.head_dim >= c.n_rot) {
          ASSERT_EQ(want[k], x[k]);  // pass-through dims
        }
      }
    }
  }
}

TEST(Rope, YarnHandCheckedCase) {
  // n_rot 4, base 1e4, n_ctx_orig 4096, beta 32/1: corr dims = [floor(0.6546), ceil(1.4071)]
  // = [0, 2]. Pair 0: ramp 1, full extrapolation, angle = pos = 10. Pair 1: theta_extrap =
  // 10 * 1e4^-0.5 = 0.1, ramp 0.5, angle = 0.5 * 0.25 * 0.1 + 0.5 * 0.1 = 0.0625.
  // Magnitude 1 + 0.1 ln(1 / 0.25) = 1.1386294.
  float dims[2];
  ref::RopeYarnCorrDims(4, 4096, 10000.0f, 32.0f, 1.0f, dims);
  EXPECT_EQ(dims[0], 0.0f);
  EXPECT_EQ(dims[1], 2.0f);
  const int32_t pos = 10;
  const double m = 1.0 + 0.1 * std::log(4.0);
  const double want_norm[4] = {m * std::cos(10.0), m * std::sin(10.0), m * std::cos(0.0625),
                               m * std::sin(0.0625)};
  for (RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    // x = (1, 0) in each pair, so the output is (cos, sin) * magnitude.
    std::vector<float> x =
        mode == RopeMode::kNorm ? std::vector<float>{1, 0, 1, 0} : std::vector<float>{1, 1, 0, 0};
    std::vector<float> y = x;
    RopeArgs a{.x = x.data(),
               .x_stride = 4,
               .n_tokens = 1,
               .n_heads = 1,
               .head_dim = 4,
               .n_rot = 4,
               .pos = &pos,
               .mode = mode,
               .base = 10000.0f,
               .freq_scale = 0.25f,
               .freq_factors = nullptr,
               .attn_factor = 1.0f,
               .ext_factor = 1.0f,
               .beta_fast = 32.0f,
               .beta_slow = 1.0f,
               .n_ctx_orig = 4096};
    ref::Rope(a);
    a.x = y.data();
    Rope(a);
    const int order[4] = {0, 1, 2, 3};
    const int neox_order[4] = {0, 2, 1, 3};  // pair i is (i, i + 2)
    for (int k = 0; k < 4; ++k) {
      const int idx = mode == RopeMode::kNorm ? order[k] : neox_order[k];
      EXPECT_NEAR(x[idx], want_norm[k], 2e-6) << "k=" << k;
      EXPECT_EQ(y[idx], x[idx]);
    }
  }
}

// ---- GLU, Add, Scale ---------------------------------------------------------------------

TEST(Glu, MatchesReferenceAndFormula) {
  std::mt19937 rng(41);
  for (GluAct act : {GluAct::kGeluTanh, GluAct::kSilu}) {
    for (int64_t n : {1, 7, 255, 4097}) {
      SCOPED_TRACE((act == GluAct::kSilu ? "silu n=" : "gelu n=") + std::to_string(n));
      std::vector<float> gate = RandomVector(rng, n, -8.0f, 8.0f);
      std::vector<float> up = RandomVector(rng, n, -2.0f, 2.0f);
      const float extremes[] = {0.0f, -0.0f, 1e-20f, -1e-8f, 30.0f, -30.0f, 100.0f, -100.0f, -5.0f};
      for (size_t i = 0; i < std::size(extremes) && i < gate.size(); ++i) gate[i] = extremes[i];
      std::vector<float> want(n);
      ref::Glu(act, gate.data(), up.data(), n, want.data());
      for (int64_t i = 0; i < n; ++i) {  // formula in double
        const double u = gate[i];
        const double a =
            act == GluAct::kSilu
                ? u / (1.0 + std::exp(-u))
                : 0.5 * u * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)));
        const double e = a * up[i];
        // tanhf near -1 leaves 1 + tanh with an absolute error of ~6e-8.
        ASSERT_NEAR(want[i], e, 1e-6 * std::fabs(e) + 1e-7 * std::fabs(u * up[i])) << gate[i];
      }
      for (Isa isa : Isas()) {
        std::vector<float> got(n);
        Glu(act, gate.data(), up.data(), n, got.data(), isa);
        std::vector<float> in_place = gate;
        Glu(act, in_place.data(), up.data(), n, in_place.data(), isa);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_NEAR(got[i], want[i],
                      2e-6f * std::fabs(want[i]) + 1e-7f * std::fabs(gate[i] * up[i]))
              << IsaName(isa) << " gate=" << gate[i];
          ASSERT_EQ(in_place[i], got[i]) << IsaName(isa);
        }
      }
    }
  }
}

TEST(AddScale, ExactElementwise) {
  std::mt19937 rng(51);
  for (int64_t n : {1, 7, 255, 4097}) {
    std::vector<float> a = RandomVector(rng, n), b = RandomVector(rng, n);
    for (Isa isa : Isas()) {
      std::vector<float> out(n), in_place = a;
      Add(a.data(), b.data(), n, out.data(), isa);
      Add(in_place.data(), b.data(), n, in_place.data(), isa);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i], a[i] + b[i]) << IsaName(isa);
        ASSERT_EQ(in_place[i], out[i]);
      }
    }
    std::vector<float> s = a, r = a;
    Scale(s.data(), n, 0.37f);
    ref::Scale(r.data(), n, 0.37f);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(s[i], a[i] * 0.37f);
      ASSERT_EQ(r[i], s[i]);
    }
  }
}

// ---- GetRows -----------------------------------------------------------------------------

TEST(GetRows, DequantizesSelectedRows) {
  std::mt19937 rng(61);
  const int64_t n_rows = 9;
  const std::vector<int32_t> ids = {3, 0, 8, 3, 5, 1, 7};
  const DType types[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                         DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                         DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  for (DType type : types) {
    for (int64_t n_cols : {1, 7, 255, 4097, 32, 224, 256, 512}) {
      const int64_t bsz = Traits(type).block_size;
      if (n_cols % bsz != 0) continue;
      SCOPED_TRACE(std::string(DTypeName(type)) + " n_cols=" + std::to_string(n_cols));
      const int64_t row_bytes = RowBytes(type, n_cols).value();
      std::vector<float> src = RandomVector(rng, n_rows * n_cols, -4.0f, 4.0f);
      std::vector<uint8_t> w(n_rows * row_bytes);
      for (int64_t r = 0; r < n_rows; ++r) {
        ASSERT_TRUE(QuantizeRow(type, &src[r * n_cols], &w[r * row_bytes], n_cols));
      }
      const int64_t out_stride = n_cols + 1;
      std::vector<float> got(ids.size() * out_stride), want(ids.size() * out_stride);
      GetRows(type, w.data(), n_cols, ids.data(), ids.size(), got.data(), out_stride);
      ref::GetRows(type, w.data(), n_cols, ids.data(), ids.size(), want.data(), out_stride);
      std::vector<float> row(n_cols);
      for (size_t i = 0; i < ids.size(); ++i) {
        DequantizeRow(type, &w[ids[i] * row_bytes], row.data(), n_cols);
        for (int64_t c = 0; c < n_cols; ++c) {
          ASSERT_EQ(got[i * out_stride + c], row[c]);
          ASSERT_EQ(want[i * out_stride + c], row[c]);
          const float x = src[ids[i] * n_cols + c];
          if (type == DType::kF32) {
            ASSERT_EQ(row[c], x);
          } else if (type == DType::kF16) {
            ASSERT_EQ(row[c], F16ToF32(F32ToF16(x)));
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace gannet::cpu
