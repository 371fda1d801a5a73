// KvCacheManager: prefix hits (a shared system prompt, a second turn of a conversation), the
// last-token rule, all-or-nothing allocation, fork with copy-on-write, deduplication, free order.
#include "engine/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace gannet::engine {
namespace {

constexpr int32_t kBs = 4;

KvCacheManager MakeManager(int32_t num_blocks) {
  Result<BlockPool> p = BlockPool::Create({.num_blocks = num_blocks, .block_size = kBs});
  EXPECT_TRUE(p.ok());
  return KvCacheManager(std::move(p).value());
}

void ExpectValid(const KvCacheManager& m) {
  const Status s = m.CheckInvariants();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

std::vector<int32_t> Range(int32_t from, int32_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Prefills `tokens` for a new sequence (with whatever prefix is cached) and commits them.
int32_t Prefill(KvCacheManager& m, SeqId seq, const std::vector<int32_t>& tokens) {
  const PrefixMatch match = m.MatchPrefix(tokens);
  EXPECT_TRUE(m.AllocateSlots(seq, static_cast<int32_t>(tokens.size()) - match.num_tokens, &match));
  m.CommitTokens(seq, tokens, static_cast<int32_t>(tokens.size()));
  return match.num_tokens;
}

TEST(KvCacheManagerTest, SharedSystemPromptIsReused) {
  KvCacheManager m = MakeManager(16);
  const std::vector<int32_t> system = Range(100, 8);  // two full blocks
  const std::vector<int32_t> a = Concat(system, Range(500, 5));
  const std::vector<int32_t> b = Concat(system, Range(600, 3));
  EXPECT_EQ(m.GetCachedPrefix(b), 0);
  EXPECT_EQ(Prefill(m, 1, a), 0);
  EXPECT_EQ(m.GetCachedPrefix(b), 8);
  EXPECT_EQ(Prefill(m, 2, b), 8);
  const std::span<const BlockId> ta = m.BlockTable(1), tb = m.BlockTable(2);
  EXPECT_EQ(ta[0], tb[0]);
  EXPECT_EQ(ta[1], tb[1]);
  EXPECT_NE(ta[2], tb[2]);
  EXPECT_EQ(m.pool().ref_count(ta[0]), 2);
  EXPECT_EQ(m.pool().num_used(), 4 + 1);  // a: 4 blocks, b: 2 shared + 1 own
  ExpectValid(m);
  // A different system prompt shares nothing; a prompt differing in block 1 shares block 0 only.
  EXPECT_EQ(m.GetCachedPrefix(Concat(Range(101, 8), Range(0, 4))), 0);
  std::vector<int32_t> c = Concat(system, Range(0, 4));
  c[6] = 9999;
  EXPECT_EQ(m.GetCachedPrefix(c), 4);
}

TEST(KvCacheManagerTest, SecondTurnReusesEveryFullBlockOfTheFirst) {
  KvCacheManager m = MakeManager(16);
  const std::vector<int32_t> prompt = Range(1, 10);
  Prefill(m, 1, prompt);
  // Decode 7 tokens: each sampled token is computed in the step after it was sampled.
  std::vector<int32_t> tokens = prompt;
  for (int32_t i = 0; i < 7; ++i) {
    tokens.push_back(1000 + i);
    if (i == 6) break;  // the last one is never computed
    ASSERT_TRUE(m.AllocateSlots(1, 1));
    m.CommitTokens(1, tokens, static_cast<int32_t>(tokens.size()));
  }
  EXPECT_EQ(m.NumSlots(1), 16);
  const std::vector<BlockId> first(m.BlockTable(1).begin(), m.BlockTable(1).end());
  m.Free(1);
  EXPECT_EQ(m.pool().num_used(), 0);
  EXPECT_EQ(m.pool().num_cached(), 4);  // 16 computed positions = 4 full blocks
  ExpectValid(m);

  const std::vector<int32_t> turn2 =
      Concat(tokens, Range(2000, 5));  // prompt + reply + new message
  const PrefixMatch match = m.MatchPrefix(turn2);
  EXPECT_EQ(match.num_tokens, 16);
  EXPECT_EQ(match.blocks, std::vector<BlockId>(first.begin(), first.begin() + 4));
  ASSERT_TRUE(m.AllocateSlots(2, static_cast<int32_t>(turn2.size()) - 16, &match));
  EXPECT_EQ(m.pool().num_used(), 6);
  ExpectValid(m);
}

TEST(KvCacheManagerTest, TheLastTokenIsAlwaysComputed) {
  KvCacheManager m = MakeManager(8);
  const std::vector<int32_t> p = Range(1, 8);  // exactly two blocks
  Prefill(m, 1, p);
  EXPECT_EQ(m.GetCachedPrefix(p), 4);  // not 8: the prompt's last token needs logits
  EXPECT_EQ(m.GetCachedPrefix(Concat(p, {42})), 8);
  EXPECT_EQ(m.GetCachedPrefix(std::vector<int32_t>{1}), 0);
  EXPECT_EQ(m.GetCachedPrefix(std::vector<int32_t>{}), 0);
}

TEST(KvCacheManagerTest, AllocationIsAllOrNothing) {
  KvCacheManager m = MakeManager(4);
  ASSERT_TRUE(m.AllocateSlots(1, 10));  // 3 blocks
  EXPECT_FALSE(m.AllocateSlots(2, 5));  // needs 2, 1 free
  EXPECT_FALSE(m.Contains(2));
  EXPECT_FALSE(m.AllocateSlots(1, 7));  // 17 slots: needs 2 more
  EXPECT_EQ(m.NumSlots(1), 10);
  EXPECT_EQ(m.pool().num_free(), 1);
  ExpectValid(m);
  EXPECT_TRUE(m.AllocateSlots(1, 2));  // 12 slots: fits in the 3 blocks held
  EXPECT_EQ(m.pool().num_free(), 1);
  EXPECT_TRUE(m.AllocateSlots(1, 1));
  EXPECT_EQ(m.pool().num_free(), 0);
  ExpectValid(m);
}

TEST(KvCacheManagerTest, RevivingCachedBlocksCountsAgainstFreeMemory) {
  // The cached prefix sits in the free queue; attaching it uses those blocks, so a request whose
  // prefix plus new blocks exceed what is free must fail without touching anything.
  KvCacheManager m = MakeManager(4);
  const std::vector<int32_t> p = Range(1, 12);
  Prefill(m, 1, p);
  m.Free(1);
  EXPECT_EQ(m.pool().num_free(), 4);
  const std::vector<int32_t> q = Concat(Range(1, 8), Range(50, 9));  // 2 cached + 3 new blocks
  const PrefixMatch match = m.MatchPrefix(q);
  ASSERT_EQ(match.num_tokens, 8);
  EXPECT_FALSE(m.AllocateSlots(2, 9, &match));
  EXPECT_FALSE(m.Contains(2));
  EXPECT_EQ(m.pool().num_cached(), 3);
  EXPECT_EQ(m.pool().num_free(), 4);
  ExpectValid(m);
  EXPECT_TRUE(m.AllocateSlots(2, 8, &match));  // 2 cached + 2 new: fits
  ExpectValid(m);
}

TEST(KvCacheManagerTest, ForkSharesBlocksAndCopiesThePartialOneOnWrite) {
  KvCacheManager m = MakeManager(16);
  const std::vector<int32_t> p = Range(1, 6);  // block 0 full, block 1 half full
  Prefill(m, 1, p);
  ASSERT_TRUE(m.Fork(1, 2).ok());
  ASSERT_TRUE(m.Fork(1, 3).ok());
  EXPECT_FALSE(m.Fork(1, 2).ok());
  EXPECT_FALSE(m.Fork(9, 4).ok());
  const std::vector<BlockId> t(m.BlockTable(1).begin(), m.BlockTable(1).end());
  EXPECT_EQ(m.pool().ref_count(t[0]), 3);
  EXPECT_EQ(m.pool().ref_count(t[1]), 3);
  EXPECT_TRUE(m.TakeCopies().empty());
  ExpectValid(m);

  // Each sample writes its first token at position 6, inside the shared block 1.
  ASSERT_TRUE(m.AllocateSlots(2, 1));
  ASSERT_TRUE(m.AllocateSlots(3, 1));
  ASSERT_TRUE(m.AllocateSlots(1, 1));
  const std::vector<BlockCopy> copies = m.TakeCopies();
  ASSERT_EQ(copies.size(), 2u);  // the last writer is alone by then and writes in place
  EXPECT_EQ(copies[0], (BlockCopy{.src = t[1], .dst = m.BlockTable(2)[1]}));
  EXPECT_EQ(copies[1], (BlockCopy{.src = t[1], .dst = m.BlockTable(3)[1]}));
  EXPECT_EQ(m.BlockTable(1)[1], t[1]);
  EXPECT_EQ(m.pool().ref_count(t[0]), 3);  // the full block stays shared
  EXPECT_EQ(m.pool().ref_count(t[1]), 1);
  // A write that starts a new block copies nothing.
  ASSERT_TRUE(m.AllocateSlots(2, 2));
  EXPECT_TRUE(m.TakeCopies().empty());
  ExpectValid(m);
}

TEST(KvCacheManagerTest, DuplicateBlocksComputedTogetherAreMerged) {
  KvCacheManager m = MakeManager(8);
  const std::vector<int32_t> p = Range(1, 9);
  // Both prefill in the same step: neither sees the other's blocks as cached.
  ASSERT_TRUE(m.AllocateSlots(1, 9));
  ASSERT_TRUE(m.AllocateSlots(2, 9));
  EXPECT_EQ(m.pool().num_used(), 6);
  m.CommitTokens(1, p, 9);
  m.CommitTokens(2, p, 9);
  EXPECT_EQ(m.BlockTable(1)[0], m.BlockTable(2)[0]);
  EXPECT_EQ(m.BlockTable(1)[1], m.BlockTable(2)[1]);
  EXPECT_NE(m.BlockTable(1)[2], m.BlockTable(2)[2]);
  EXPECT_EQ(m.pool().num_used(), 4);
  ExpectValid(m);
}

TEST(KvCacheManagerTest, FreeReleasesTheTailFirst) {
  KvCacheManager m = MakeManager(3);
  Prefill(m, 1, Range(1, 12));
  const std::vector<BlockId> t(m.BlockTable(1).begin(), m.BlockTable(1).end());
  m.Free(1);
  m.Free(1);  // unknown now: no-op
  // Deepest block most evictable; the first block (most shared in practice) kept longest.
  EXPECT_EQ(m.pool().FreeQueue(), (std::vector<BlockId>{t[2], t[1], t[0]}));
  ExpectValid(m);
}

}  // namespace
}  // namespace gannet::engine
