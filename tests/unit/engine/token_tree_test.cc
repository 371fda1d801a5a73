// Token-tree verification in one forward pass (ModelRunner::Execute with BatchSeq::tree_parents):
// every node's logits must have the exact bits its path (committed prefix, ancestors, node) gets
// as an ordinary sequence, prefilled or decoded token by token; alone or beside another sequence;
// on the tiny fixtures, Gemma 3's sliding-window layers included. After the accepted path's K/V
// are compacted (PagedKvStore::CopySlots), decoding continues with the bits of a sequence that
// was never speculated.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/model_runner.h"
#include "engine/paged_kv.h"

namespace gannet::engine {
namespace {

const std::string kDir = std::string(GANNET_FIXTURES_DIR) + "/tiny/";
constexpr int64_t kBlockSize = 4;

std::vector<int32_t> RandomTokens(std::mt19937& rng, int64_t n, int64_t n_vocab) {
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(n_vocab) - 1);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = dist(rng);
  return t;
}

// parent[i] < i, or -1; two thirds of the nodes extend the previous one, so paths get deep.
std::vector<int32_t> RandomTree(std::mt19937& rng, int64_t n) {
  std::vector<int32_t> parent(n);
  for (int64_t i = 0; i < n; ++i) {
    const bool extend = std::uniform_int_distribution<int>(0, 2)(rng) != 0;
    parent[i] = extend
                    ? static_cast<int32_t>(i - 1)
                    : std::uniform_int_distribution<int32_t>(-1, static_cast<int32_t>(i - 1))(rng);
  }
  return parent;
}

// Node i's path, root first.
std::vector<int64_t> PathOf(const std::vector<int32_t>& parent, int64_t i) {
  std::vector<int64_t> path;
  for (int64_t j = i; j >= 0; j = parent[j]) path.push_back(j);
  std::reverse(path.begin(), path.end());
  return path;
}

bool SameBits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

// A runner, a block pool, and sequences with scattered block tables.
class TreeTest : public ::testing::TestWithParam<std::string> {
 protected:
  struct Seq {
    std::vector<int32_t> table;
    SeqKvViews views;
  };

  void SetUp() override {
    auto runner = ModelRunner::Load(kDir + GetParam() + ".gguf", {.n_threads = 2, .n_ctx = 128});
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    runner_ = std::move(runner).value();
    n_vocab_ = runner_->config().n_vocab;
    auto store = PagedKvStore::Create(runner_->config(), 512, kBlockSize);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_.emplace(std::move(store).value());
    free_.resize(512);
    std::iota(free_.begin(), free_.end(), 0);
    std::shuffle(free_.begin(), free_.end(), rng_);
  }

  // A sequence with room for n_slots slots, in blocks taken from the shuffled free list.
  Seq NewSeq(int64_t n_slots) {
    Seq s;
    for (int64_t b = 0; b < (n_slots + kBlockSize - 1) / kBlockSize; ++b) {
      s.table.push_back(free_.back());
      free_.pop_back();
    }
    store_->Assign(s.table, &s.views);
    return s;
  }

  // Runs one ordinary chunk of `seq` and returns its logits (every row, or the last row's).
  std::vector<float> Run(Seq& seq, std::span<const int32_t> tokens, int64_t n_past, bool all) {
    const BatchSeq b{.tokens = tokens,
                     .n_past = n_past,
                     .kv = seq.views.layers,
                     .logits = true,
                     .all_logits = all};
    auto out = runner_->Execute(std::span<const BatchSeq>(&b, 1));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? std::vector<float>(out->begin(), out->end()) : std::vector<float>();
  }

  std::span<const float> Row(const std::vector<float>& logits, int64_t r) const {
    return std::span<const float>(logits).subspan(static_cast<size_t>(r * n_vocab_),
                                                  static_cast<size_t>(n_vocab_));
  }

  std::mt19937 rng_{42};
  std::unique_ptr<ModelRunner> runner_;
  int64_t n_vocab_ = 0;
  std::optional<PagedKvStore> store_;
  std::vector<int32_t> free_;
};

// Every node of a random tree over an 11-token prefix (the fixtures' window is 8): its row of the
// tree pass against (a) its path prefilled in one pass with every row's logits and (b) its path
// decoded token by token after the prefilled prefix.
TEST_P(TreeTest, NodeLogitsAreTheirPathsBitForBit) {
  const int64_t n_past = 11, n_tree = 18;
  const std::vector<int32_t> prefix = RandomTokens(rng_, n_past, n_vocab_);
  const std::vector<int32_t> tokens = RandomTokens(rng_, n_tree, n_vocab_);
  const std::vector<int32_t> parent = RandomTree(rng_, n_tree);

  Seq s = NewSeq(n_past + n_tree);
  Run(s, prefix, 0, false);
  const BatchSeq tree{
      .tokens = tokens, .n_past = n_past, .kv = s.views.layers, .tree_parents = parent};
  auto out = runner_->Execute(std::span<const BatchSeq>(&tree, 1));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), static_cast<size_t>(n_tree * n_vocab_));
  const std::vector<float> got(out->begin(), out->end());

  int64_t max_depth = 0;
  for (int64_t i = 0; i < n_tree; ++i) {
    const std::vector<int64_t> path = PathOf(parent, i);
    const int64_t depth = static_cast<int64_t>(path.size());
    max_depth = std::max(max_depth, depth);
    std::vector<int32_t> seq_tokens = prefix;
    for (int64_t j : path) seq_tokens.push_back(tokens[j]);
    // (a) one prefill of prefix + path, every row's logits.
    Seq p = NewSeq(n_past + depth);
    const std::vector<float> prefill = Run(p, seq_tokens, 0, true);
    ASSERT_EQ(prefill.size(), static_cast<size_t>((n_past + depth) * n_vocab_));
    // (b) the prefix, then the path one decode step at a time.
    Seq d = NewSeq(n_past + depth);
    Run(d, prefix, 0, false);
    for (int64_t r = 0; r < depth; ++r) {
      const std::vector<float> step =
          Run(d, std::span<const int32_t>(&tokens[path[r]], 1), n_past + r, false);
      ASSERT_TRUE(SameBits(step, Row(got, path[r])))
          << "node " << path[r] << " (depth " << r << ") differs from its decode step";
      ASSERT_TRUE(SameBits(Row(prefill, n_past + r), Row(got, path[r])))
          << "node " << path[r] << " (depth " << r << ") differs from its path's prefill";
    }
  }
  EXPECT_GE(max_depth, 4) << "the random tree should have a deep path";
}

// A tree and an ordinary decode step of another sequence in one batch: each gets the bits it gets
// alone.
TEST_P(TreeTest, TreeBesideAnOrdinarySequence) {
  const int64_t n_past = 9, n_tree = 12, n_other = 14;
  const std::vector<int32_t> prefix = RandomTokens(rng_, n_past, n_vocab_);
  const std::vector<int32_t> tokens = RandomTokens(rng_, n_tree, n_vocab_);
  const std::vector<int32_t> parent = RandomTree(rng_, n_tree);
  const std::vector<int32_t> other = RandomTokens(rng_, n_other + 1, n_vocab_);

  Seq alone = NewSeq(n_past + n_tree);
  Run(alone, prefix, 0, false);
  const BatchSeq tree_alone{
      .tokens = tokens, .n_past = n_past, .kv = alone.views.layers, .tree_parents = parent};
  auto out = runner_->Execute(std::span<const BatchSeq>(&tree_alone, 1));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const std::vector<float> want_tree(out->begin(), out->end());
  Seq other_alone = NewSeq(n_other + 1);
  Run(other_alone, std::span<const int32_t>(other).first(n_other), 0, false);
  const std::vector<float> want_other =
      Run(other_alone, std::span<const int32_t>(&other[n_other], 1), n_other, false);

  Seq t = NewSeq(n_past + n_tree), o = NewSeq(n_other + 1);
  Run(t, prefix, 0, false);
  Run(o, std::span<const int32_t>(other).first(n_other), 0, false);
  // The ordinary sequence on both sides of the tree.
  for (bool other_first : {true, false}) {
    const BatchSeq seq_o{.tokens = std::span<const int32_t>(&other[n_other], 1),
                         .n_past = n_other,
                         .kv = o.views.layers,
                         .logits = true};
    const BatchSeq seq_t{
        .tokens = tokens, .n_past = n_past, .kv = t.views.layers, .tree_parents = parent};
    const std::vector<BatchSeq> batch =
        other_first ? std::vector<BatchSeq>{seq_o, seq_t} : std::vector<BatchSeq>{seq_t, seq_o};
    auto both = runner_->Execute(batch);
    ASSERT_TRUE(both.ok()) << both.status().ToString();
    ASSERT_EQ(both->size(), static_cast<size_t>((n_tree + 1) * n_vocab_));
    const std::vector<float> got(both->begin(), both->end());
    const int64_t tree_row = other_first ? 1 : 0, other_row = other_first ? 0 : n_tree;
    EXPECT_TRUE(SameBits(Row(got, other_row), want_other)) << "other_first=" << other_first;
    for (int64_t i = 0; i < n_tree; ++i) {
      EXPECT_TRUE(SameBits(Row(got, tree_row + i), Row(want_tree, i)))
          << "node " << i << " other_first=" << other_first;
    }
  }
}

// Verification, then the accepted path's K/V moved to consecutive slots, then more decode steps:
// the bits of the sequence that decoded the path token by token and never saw the tree.
TEST_P(TreeTest, DecodingAfterCompactionIsTheUnspeculatedSequence) {
  const int64_t n_past = 10, n_tree = 16, n_more = 4;
  const std::vector<int32_t> prefix = RandomTokens(rng_, n_past, n_vocab_);
  const std::vector<int32_t> tokens = RandomTokens(rng_, n_tree, n_vocab_);
  std::vector<int32_t> parent = RandomTree(rng_, n_tree);
  // The accepted path: 0 -> 2 -> 3 -> 7 -> 11 (slots n_past + 0, 2, 3, 7, 11), so every node but
  // the first moves; siblings of its nodes elsewhere.
  parent[0] = -1;
  parent[2] = 0;
  parent[3] = 2;
  parent[7] = 3;
  parent[11] = 7;
  const std::vector<int64_t> path = PathOf(parent, 11);
  ASSERT_EQ(path, (std::vector<int64_t>{0, 2, 3, 7, 11}));
  const std::vector<int32_t> more = RandomTokens(rng_, n_more, n_vocab_);

  Seq s = NewSeq(n_past + n_tree + n_more);
  Run(s, prefix, 0, false);
  const BatchSeq tree{
      .tokens = tokens, .n_past = n_past, .kv = s.views.layers, .tree_parents = parent};
  ASSERT_TRUE(runner_->Execute(std::span<const BatchSeq>(&tree, 1)).ok());
  std::vector<std::pair<int64_t, int64_t>> moves;
  for (size_t r = 0; r < path.size(); ++r) {
    moves.emplace_back(n_past + path[r], n_past + static_cast<int64_t>(r));
  }
  store_->CopySlots(s.table, moves);

  Seq ref = NewSeq(n_past + n_tree + n_more);
  Run(ref, prefix, 0, false);
  int64_t pos = n_past;
  for (int64_t j : path) Run(ref, std::span<const int32_t>(&tokens[j], 1), pos++, false);
  for (int64_t k = 0; k < n_more; ++k, ++pos) {
    const std::vector<float> want = Run(ref, std::span<const int32_t>(&more[k], 1), pos, false);
    const std::vector<float> got = Run(s, std::span<const int32_t>(&more[k], 1), pos, false);
    ASSERT_TRUE(SameBits(got, want)) << "decode step " << k << " after compaction";
  }
}

TEST_P(TreeTest, MalformedTreesAreRejected) {
  Seq s = NewSeq(80);
  const std::vector<int32_t> tokens = RandomTokens(rng_, 65, n_vocab_);
  std::vector<int32_t> chain(65);
  std::iota(chain.begin(), chain.end(), -1);
  auto run = [&](std::span<const int32_t> t, std::span<const int32_t> parents) {
    const BatchSeq b{.tokens = t, .n_past = 3, .kv = s.views.layers, .tree_parents = parents};
    return runner_->Execute(std::span<const BatchSeq>(&b, 1)).status();
  };
  EXPECT_EQ(run(tokens, chain).code(), StatusCode::kInvalidArgument);  // 65 tokens
  EXPECT_TRUE(
      run(std::span<const int32_t>(tokens).first(64), std::span<const int32_t>(chain).first(64))
          .ok());
  const std::vector<int32_t> self = {-1, 1}, ahead = {-1, 0, 3}, below = {-2};
  EXPECT_EQ(run(std::span<const int32_t>(tokens).first(2), self).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run(std::span<const int32_t>(tokens).first(3), ahead).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run(std::span<const int32_t>(tokens).first(1), below).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run(std::span<const int32_t>(tokens).first(2), below).code(),
            StatusCode::kInvalidArgument);  // one parent for two tokens
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TreeTest,
                         ::testing::Values("tiny-llama-f32", "tiny-llama-q", "tiny-qwen2-f32",
                                           "tiny-gemma3-f32", "tiny-gemma3-q"));

// CopySlots moves every layer's K and V of one slot, across blocks of a scattered table, and
// touches nothing else.
TEST(CopySlots, MovesEveryLayersRowsAndNothingElse) {
  auto runner = ModelRunner::Load(kDir + "tiny-gemma3-q.gguf", {.n_threads = 1, .n_ctx = 64});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  const models::ModelConfig& c = (*runner)->config();
  auto store = PagedKvStore::Create(c, 6, 3);
  ASSERT_TRUE(store.ok());
  const std::vector<int32_t> table = {4, 1, 5, 0};  // slots 0..11
  SeqKvViews v;
  store->Assign(table, &v);
  // Every element of every slot gets a distinct value.
  auto value = [](size_t l, int kv, int64_t slot, int64_t e) {
    return static_cast<uint16_t>(1 + l * 7919 + kv * 3001 + slot * 131 + e);
  };
  auto row = [&](size_t l, int kv, int64_t slot) {
    const graph::KvLayerView& lv = v.layers[l];
    uint16_t* const* blocks = kv == 0 ? lv.k_blocks : lv.v_blocks;
    return blocks[slot / 3] + (slot % 3) * c.kv_width(static_cast<int64_t>(l));
  };
  for (size_t l = 0; l < v.layers.size(); ++l)
    for (int kv = 0; kv < 2; ++kv)
      for (int64_t slot = 0; slot < 12; ++slot)
        for (int64_t e = 0; e < c.kv_width(static_cast<int64_t>(l)); ++e)
          row(l, kv, slot)[e] = value(l, kv, slot, e);
  // A path at slots 4, 5, 8, 10 compacted to 4, 5, 6, 7 (in order: 8 -> 6, then 10 -> 7).
  const std::vector<std::pair<int64_t, int64_t>> moves = {{4, 4}, {5, 5}, {8, 6}, {10, 7}};
  store->CopySlots(table, moves);
  const int64_t source[12] = {0, 1, 2, 3, 4, 5, 8, 10, 8, 9, 10, 11};
  for (size_t l = 0; l < v.layers.size(); ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      for (int64_t slot = 0; slot < 12; ++slot) {
        for (int64_t e = 0; e < c.kv_width(static_cast<int64_t>(l)); ++e) {
          ASSERT_EQ(row(l, kv, slot)[e], value(l, kv, source[slot], e))
              << "layer " << l << (kv ? " V" : " K") << " slot " << slot << " element " << e;
        }
      }
    }
  }
  // Blocks 2 and 3 belong to no table: still as created.
  SeqKvViews rest;
  store->Assign(std::vector<int32_t>{2, 3}, &rest);
  for (size_t l = 0; l < rest.layers.size(); ++l) {
    const int64_t n = 3 * c.kv_width(static_cast<int64_t>(l));
    for (int64_t b = 0; b < 2; ++b) {
      EXPECT_TRUE(std::all_of(rest.layers[l].k_blocks[b], rest.layers[l].k_blocks[b] + n,
                              [](uint16_t x) { return x == 0; }));
      EXPECT_TRUE(std::all_of(rest.layers[l].v_blocks[b], rest.layers[l].v_blocks[b] + n,
                              [](uint16_t x) { return x == 0; }));
    }
  }
}

}  // namespace
}  // namespace gannet::engine
