// Token-tree verification on the real default model (Gemma 3 270M Q4_K_M: 4 query heads on one
// kv head, sliding-window layers, K-quant weights), with more compute threads than kv heads so
// that a decode step splits a head group across work items while the tree pass does not:
//  - every node's logits have the exact bits of its path decoded token by token;
//  - greedy speculation accepts exactly the greedy continuation: a tree holding that continuation
//    among random siblings, checked greedily node by node, yields the same tokens, and decoding on
//    after compacting the accepted path's K/V gives the unspeculated logits bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/model_runner.h"
#include "engine/paged_kv.h"

namespace gannet::engine {
namespace {

constexpr int64_t kBlockSize = 16;

int32_t Argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

bool SameBits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

class TokenTreeModelTest : public ::testing::TestWithParam<int> {
 protected:
  struct Seq {
    std::vector<int32_t> table;
    SeqKvViews views;
  };

  void SetUp() override {
    const char* model = std::getenv("GANNET_TEST_MODEL");
    ASSERT_NE(model, nullptr) << "GANNET_TEST_MODEL is not set (run through ctest)";
    auto runner = ModelRunner::Load(model, {.n_threads = GetParam(), .n_ctx = 512});
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    runner_ = std::move(runner).value();
    n_vocab_ = runner_->config().n_vocab;
    auto store = PagedKvStore::Create(runner_->config(), 64, kBlockSize);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_.emplace(std::move(store).value());
    prompt_ = runner_->tokenizer().Encode(
        "The lighthouse keeper climbed the spiral stairs every evening, and", true, false);
    ASSERT_GT(prompt_.size(), 8u);
  }

  Seq NewSeq(int64_t n_slots) {
    Seq s;
    for (int64_t b = 0; b < (n_slots + kBlockSize - 1) / kBlockSize; ++b) {
      s.table.push_back(static_cast<int32_t>(next_block_));
      next_block_ = (next_block_ + 7) % 64;  // scattered, each block once while 64 last
    }
    store_->Assign(s.table, &s.views);
    return s;
  }

  std::vector<float> Run(Seq& s, std::span<const int32_t> tokens, int64_t n_past,
                         std::span<const int32_t> parents = {}) {
    const BatchSeq b{.tokens = tokens,
                     .n_past = n_past,
                     .kv = s.views.layers,
                     .logits = true,
                     .tree_parents = parents};
    auto out = runner_->Execute(std::span<const BatchSeq>(&b, 1));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? std::vector<float>(out->begin(), out->end()) : std::vector<float>();
  }

  std::span<const float> Row(const std::vector<float>& v, int64_t r) const {
    return std::span<const float>(v).subspan(static_cast<size_t>(r * n_vocab_),
                                             static_cast<size_t>(n_vocab_));
  }

  std::unique_ptr<ModelRunner> runner_;
  int64_t n_vocab_ = 0;
  std::optional<PagedKvStore> store_;
  int64_t next_block_ = 0;
  std::vector<int32_t> prompt_;
};

TEST_P(TokenTreeModelTest, GreedySpeculationGivesTheGreedyTokensAndBits) {
  const int64_t n_past = static_cast<int64_t>(prompt_.size());
  constexpr int64_t kSteps = 8;
  // Plain greedy decoding: kSteps tokens and the logits that chose each.
  Seq plain = NewSeq(n_past + kSteps + 2);
  std::vector<float> logits = Run(plain, prompt_, 0);
  const std::vector<float> prompt_logits = logits;
  std::vector<int32_t> greedy;
  std::vector<std::vector<float>> plain_logits;
  for (int64_t k = 0; k < kSteps; ++k) {
    greedy.push_back(Argmax(logits));
    logits = Run(plain, std::span<const int32_t>(&greedy.back(), 1), n_past + k);
    plain_logits.push_back(logits);
  }

  // A tree over the prompt: the greedy continuation as one path (not at consecutive indices), and
  // random siblings and side branches around it.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(n_vocab_) - 1);
  std::vector<int32_t> tokens, parents;
  std::vector<int64_t> on_path;  // tree index of greedy[k]
  int32_t parent = -1;
  for (int64_t k = 0; k < kSteps; ++k) {
    for (int s = 0; s < 2; ++s) {  // two decoys beside the greedy token, one with a child
      tokens.push_back(any(rng));
      parents.push_back(parent);
      if (s == 0) {
        tokens.push_back(any(rng));
        parents.push_back(static_cast<int32_t>(tokens.size() - 2));
      }
    }
    tokens.push_back(greedy[k]);
    parents.push_back(parent);
    parent = static_cast<int32_t>(tokens.size() - 1);
    on_path.push_back(parent);
  }
  ASSERT_LE(tokens.size(), 64u);
  Seq spec = NewSeq(n_past + static_cast<int64_t>(tokens.size()) + 2);
  const std::vector<float> first = Run(spec, prompt_, 0);
  ASSERT_TRUE(SameBits(first, prompt_logits));
  const std::vector<float> tree = Run(spec, tokens, n_past, parents);
  ASSERT_EQ(tree.size(), tokens.size() * static_cast<size_t>(n_vocab_));

  // Every node, decoys included: its path decoded token by token after the prompt.
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::vector<int64_t> path;
    for (int64_t j = static_cast<int64_t>(i); j >= 0; j = parents[j]) path.push_back(j);
    std::reverse(path.begin(), path.end());
    Seq alone = NewSeq(n_past + static_cast<int64_t>(path.size()));
    Run(alone, prompt_, 0);
    std::vector<float> step;
    for (size_t r = 0; r < path.size(); ++r) {
      step = Run(alone, std::span<const int32_t>(&tokens[path[r]], 1),
                 n_past + static_cast<int64_t>(r));
    }
    ASSERT_TRUE(SameBits(step, Row(tree, static_cast<int64_t>(i))))
        << "node " << i << " at depth " << path.size() - 1;
  }

  // Greedy verification: follow the child whose token is the argmax of the current node.
  int32_t want = Argmax(first);
  std::vector<int64_t> accepted;
  int64_t node = -1;
  while (true) {
    int64_t next = -1;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (parents[i] == node && tokens[i] == want) next = static_cast<int64_t>(i);
    }
    if (next < 0) break;
    accepted.push_back(next);
    node = next;
    want = Argmax(Row(tree, next));
  }
  ASSERT_EQ(accepted, on_path) << "speculation accepted another path than greedy decoding";
  for (int64_t k = 0; k < kSteps; ++k) {
    ASSERT_TRUE(SameBits(Row(tree, on_path[k]), plain_logits[k])) << "greedy step " << k;
  }

  // Compact the accepted path and decode two more tokens: the plain sequence's bits.
  std::vector<std::pair<int64_t, int64_t>> moves;
  for (int64_t k = 0; k < kSteps; ++k) moves.emplace_back(n_past + on_path[k], n_past + k);
  store_->CopySlots(spec.table, moves);
  int32_t t = want;
  for (int64_t k = 0; k < 2; ++k) {
    const std::vector<float> a = Run(plain, std::span<const int32_t>(&t, 1), n_past + kSteps + k);
    const std::vector<float> b = Run(spec, std::span<const int32_t>(&t, 1), n_past + kSteps + k);
    ASSERT_TRUE(SameBits(a, b)) << "decode step " << k << " after compaction";
    t = Argmax(a);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, TokenTreeModelTest, ::testing::Values(1, 4));

}  // namespace
}  // namespace gannet::engine
