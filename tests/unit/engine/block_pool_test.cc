// BlockPool: reference counts, the free queue's order (unregistered first, then cached blocks
// least recently freed first), exact prefix-cache hits despite hash collisions, copy-on-write.
#include "engine/block_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace gannet::engine {
namespace {

BlockPool MakePool(int32_t num_blocks, int32_t block_size = 4) {
  Result<BlockPool> p = BlockPool::Create({.num_blocks = num_blocks, .block_size = block_size});
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return std::move(p).value();
}

void ExpectValid(const BlockPool& p) {
  const Status s = p.CheckInvariants();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(BlockPoolTest, CreateRejectsBadOptions) {
  EXPECT_FALSE(BlockPool::Create({.num_blocks = 0, .block_size = 16}).ok());
  EXPECT_FALSE(BlockPool::Create({.num_blocks = -3, .block_size = 16}).ok());
  EXPECT_FALSE(BlockPool::Create({.num_blocks = 8, .block_size = 0}).ok());
  EXPECT_FALSE(BlockPool::Create({.num_blocks = 1 << 30, .block_size = 16}).ok());
  Result<BlockPool> ok = BlockPool::Create({.num_blocks = 8});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->block_size(), 16);
  EXPECT_EQ(ok->num_free(), 8);
}

TEST(BlockPoolTest, RefCountsAndAllOrNothingAllocation) {
  BlockPool p = MakePool(5);
  std::optional<std::vector<BlockId>> a = p.Allocate(3);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, (std::vector<BlockId>{0, 1, 2}));
  EXPECT_EQ(p.num_free(), 2);
  EXPECT_EQ(p.num_used(), 3);
  for (BlockId b : *a) EXPECT_EQ(p.ref_count(b), 1);

  EXPECT_FALSE(p.Allocate(3).has_value());  // only 2 free: nothing taken
  EXPECT_EQ(p.num_free(), 2);
  ExpectValid(p);

  p.AddRef((*a)[1]);
  EXPECT_EQ(p.ref_count((*a)[1]), 2);
  p.Release((*a)[1]);
  EXPECT_EQ(p.ref_count((*a)[1]), 1);
  EXPECT_EQ(p.num_free(), 2);
  for (BlockId b : *a) p.Release(b);
  EXPECT_EQ(p.num_free(), 5);
  EXPECT_EQ(p.num_used(), 0);
  ExpectValid(p);
  EXPECT_TRUE(p.Allocate(0).has_value());
  EXPECT_FALSE(p.Allocate(-1).has_value());
}

TEST(BlockPoolTest, UnregisteredBlocksAreReusedBeforeCachedOnes) {
  BlockPool p = MakePool(4);
  std::vector<BlockId> b = *p.Allocate(4);
  const std::vector<int32_t> t0 = {1, 2, 3, 4}, t1 = {5, 6, 7, 8};
  const BlockHash h0 = HashBlockTokens(kRootBlockHash, t0);
  const BlockHash h1 = HashBlockTokens(h0, t1);
  ASSERT_EQ(p.Register(b[0], h0, kNoBlock, t0), b[0]);
  ASSERT_EQ(p.Register(b[1], h1, b[0], t1), b[1]);
  EXPECT_EQ(p.num_cached(), 2);
  // Free the cached ones first, then the plain ones: the plain ones still go to the front.
  p.Release(b[0]);
  p.Release(b[1]);
  p.Release(b[2]);
  p.Release(b[3]);
  EXPECT_EQ(p.FreeQueue(), (std::vector<BlockId>{b[3], b[2], b[0], b[1]}));
  ExpectValid(p);

  std::vector<BlockId> two = *p.Allocate(2);
  EXPECT_EQ(two, (std::vector<BlockId>{b[3], b[2]}));
  EXPECT_EQ(p.num_cached(), 2);  // nothing evicted yet
  EXPECT_EQ(p.Lookup(h0, kNoBlock, t0), b[0]);
  EXPECT_EQ(p.Lookup(h1, b[0], t1), b[1]);

  // Now memory is needed: the least recently freed cached block goes first.
  std::vector<BlockId> one = *p.Allocate(1);
  EXPECT_EQ(one[0], b[0]);
  EXPECT_FALSE(p.is_cached(b[0]));
  EXPECT_EQ(p.Lookup(h0, kNoBlock, t0), kNoBlock);
  EXPECT_EQ(p.num_evictions(), 1);
  ExpectValid(p);
}

TEST(BlockPoolTest, EvictionIsLeastRecentlyFreedFirstAndRevivalRefreshes) {
  BlockPool p = MakePool(3);
  std::vector<BlockId> b = *p.Allocate(3);
  std::vector<BlockHash> h(3);
  std::vector<std::vector<int32_t>> t = {{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}};
  for (int i = 0; i < 3; ++i) {
    h[i] = HashBlockTokens(kRootBlockHash, t[i]);
    ASSERT_EQ(p.Register(b[i], h[i], kNoBlock, t[i]), b[i]);
  }
  p.Release(b[2]);
  p.Release(b[0]);
  p.Release(b[1]);
  EXPECT_EQ(p.FreeQueue(), (std::vector<BlockId>{b[2], b[0], b[1]}));
  // A hit on b[2] takes it out of the queue; freed again it becomes the most recent.
  ASSERT_EQ(p.Lookup(h[2], kNoBlock, t[2]), b[2]);
  p.AddRef(b[2]);
  EXPECT_EQ(p.num_free(), 2);
  EXPECT_EQ(p.ref_count(b[2]), 1);
  ExpectValid(p);
  p.Release(b[2]);
  EXPECT_EQ(p.FreeQueue(), (std::vector<BlockId>{b[0], b[1], b[2]}));
  EXPECT_EQ(*p.Allocate(1), std::vector<BlockId>{b[0]});
  EXPECT_EQ(*p.Allocate(1), std::vector<BlockId>{b[1]});
  EXPECT_TRUE(p.is_cached(b[2]));
  ExpectValid(p);
}

TEST(BlockPoolTest, HitsAreVerifiedNotTrustedToTheHash) {
  BlockPool p = MakePool(6);
  std::vector<BlockId> b = *p.Allocate(6);
  const std::vector<int32_t> t0 = {10, 11, 12, 13}, t1 = {20, 21, 22, 23}, other = {20, 21, 22, 99};
  const BlockHash h0 = HashBlockTokens(kRootBlockHash, t0);
  const BlockHash h1 = HashBlockTokens(h0, t1);
  ASSERT_EQ(p.Register(b[0], h0, kNoBlock, t0), b[0]);
  ASSERT_EQ(p.Register(b[1], h1, b[0], t1), b[1]);

  // Same hash, different tokens (a collision): a miss, never the wrong block.
  EXPECT_EQ(p.Lookup(h1, b[0], other), kNoBlock);
  // Same hash and tokens but another parent: a miss.
  EXPECT_EQ(p.Lookup(h1, b[2], t1), kNoBlock);
  EXPECT_EQ(p.Lookup(h1, kNoBlock, t1), kNoBlock);
  EXPECT_EQ(p.Lookup(h1, b[0], t1), b[1]);

  // Registering different contents under a taken hash is refused; the entry stays.
  EXPECT_EQ(p.Register(b[2], h1, b[0], other), kNoBlock);
  EXPECT_FALSE(p.is_cached(b[2]));
  EXPECT_EQ(p.Lookup(h1, b[0], t1), b[1]);
  // Identical contents computed twice: the existing holder is returned, the duplicate not cached.
  EXPECT_EQ(p.Register(b[3], h1, b[0], t1), b[1]);
  EXPECT_FALSE(p.is_cached(b[3]));
  ExpectValid(p);
}

TEST(BlockPoolTest, ChildOfAnEvictedParentNeverMatchesItsSuccessor) {
  // b0 (parent) and b1 (child) are cached and free; b0 is evicted and its id re-registered with new
  // contents. Even when a lookup reaches b1's hash through the new b0 (a collision), the parent's
  // generation changed, so b1 does not match.
  BlockPool p = MakePool(2);
  std::vector<BlockId> b = *p.Allocate(2);
  const std::vector<int32_t> t0 = {1, 2, 3, 4}, t1 = {5, 6, 7, 8}, t0b = {9, 9, 9, 9};
  const BlockHash h0 = HashBlockTokens(kRootBlockHash, t0);
  const BlockHash h1 = HashBlockTokens(h0, t1);
  ASSERT_EQ(p.Register(b[0], h0, kNoBlock, t0), b[0]);
  ASSERT_EQ(p.Register(b[1], h1, b[0], t1), b[1]);
  p.Release(b[0]);  // least recently freed: evicted first
  p.Release(b[1]);
  std::vector<BlockId> again = *p.Allocate(1);
  ASSERT_EQ(again[0], b[0]);
  ASSERT_EQ(p.Register(b[0], HashBlockTokens(kRootBlockHash, t0b), kNoBlock, t0b), b[0]);
  EXPECT_TRUE(p.is_cached(b[1]));
  EXPECT_EQ(p.Lookup(h1, b[0], t1), kNoBlock);
  ExpectValid(p);
}

TEST(BlockPoolTest, CopyOnWriteOnlyForSharedBlocks) {
  BlockPool p = MakePool(3);
  const BlockId a = (*p.Allocate(1))[0];
  std::vector<BlockCopy> copies;
  EXPECT_EQ(p.MakeWritable(a, &copies), a);  // sole holder writes in place
  EXPECT_TRUE(copies.empty());

  p.AddRef(a);  // shared by two sequences
  std::optional<BlockId> w = p.MakeWritable(a, &copies);
  ASSERT_TRUE(w.has_value());
  EXPECT_NE(*w, a);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0], (BlockCopy{.src = a, .dst = *w}));
  EXPECT_EQ(p.ref_count(a), 1);
  EXPECT_EQ(p.ref_count(*w), 1);
  ExpectValid(p);

  // No free block: nothing changes.
  const BlockId last = (*p.Allocate(1))[0];
  p.AddRef(last);
  copies.clear();
  EXPECT_FALSE(p.MakeWritable(last, &copies).has_value());
  EXPECT_TRUE(copies.empty());
  EXPECT_EQ(p.ref_count(last), 2);
  ExpectValid(p);
}

TEST(BlockPoolTest, HashDependsOnParentOrderAndLength) {
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {2, 1, 3, 4}, c = {1, 2, 3};
  EXPECT_EQ(HashBlockTokens(kRootBlockHash, a), HashBlockTokens(kRootBlockHash, a));
  EXPECT_NE(HashBlockTokens(kRootBlockHash, a), HashBlockTokens(kRootBlockHash, b));
  EXPECT_NE(HashBlockTokens(kRootBlockHash, a), HashBlockTokens(kRootBlockHash + 1, a));
  EXPECT_NE(HashBlockTokens(kRootBlockHash, a), HashBlockTokens(kRootBlockHash, c));
  // Single-bit changes anywhere spread: none of the 496 one-bit neighbours collide.
  std::vector<BlockHash> seen;
  std::vector<int32_t> t(16, 0);
  for (int pos = 0; pos < 16; ++pos) {
    for (int bit = 0; bit < 31; ++bit) {
      t.assign(16, 7);
      t[pos] ^= 1 << bit;
      seen.push_back(HashBlockTokens(kRootBlockHash, t));
    }
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
}

}  // namespace
}  // namespace gannet::engine
