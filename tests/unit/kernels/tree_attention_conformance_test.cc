// Conformance of token-tree attention (kernels::SeqSlice::tree_mask) for every ISA target this
// machine runs: random trees on odd shapes against the scalar reference, every node bit for bit
// against its path run as an ordinary causal chain, and the reference against a textbook softmax.
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
#include "conformance_util.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ref.h"
#include "tensor/dtype.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

using conformance::FillCache;
using conformance::Isas;
using conformance::Pool;
using conformance::RandomVector;
using conformance::TestCache;

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

}  // namespace
}  // namespace gannet::cpu
