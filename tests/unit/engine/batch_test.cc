// Multi-sequence forward passes over the paged KV store: a batch that mixes several sequences'
// prompt chunks and decode tokens, with scattered block tables, must give each sequence the
// logits it gets when evaluated alone in the single-sequence cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "engine/paged_kv.h"

namespace gannet::engine {
namespace {

const std::string kDir = std::string(GANNET_FIXTURES_DIR) + "/tiny/";

// Last-token logits of `tokens` evaluated alone from an empty cache.
std::vector<float> AloneLogits(const std::string& path, const std::vector<int32_t>& tokens) {
  auto eng = ModelRunner::Load(path, {.n_threads = 2, .n_ctx = 64});
  EXPECT_TRUE(eng.ok()) << eng.status().ToString();
  auto logits = (*eng)->Evaluate(tokens, 0, false);
  EXPECT_TRUE(logits.ok()) << logits.status().ToString();
  return std::vector<float>(logits->begin(), logits->end());
}

double MaxAbsDiff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  return worst;
}

class BatchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchTest, MixedBatchEqualsSequencesAlone) {
  const std::string path = kDir + GetParam() + ".gguf";
  auto eng = ModelRunner::Load(path, {.n_threads = 2, .n_ctx = 64});
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  ModelRunner& e = **eng;
  const int64_t n_vocab = e.config().n_vocab;
  auto store = PagedKvStore::Create(e.config(), /*n_blocks=*/16, /*block_size=*/4);
  ASSERT_TRUE(store.ok()) << store.status().ToString();

  // Three sequences with scattered, interleaved physical blocks.
  std::vector<int32_t> a = {1, 5, 9, 2, 7, 3}, b = {4, 4, 8}, c = {2, 11, 6, 1, 3, 9, 10, 5, 7};
  for (auto* s : {&a, &b, &c}) {
    for (auto& t : *s) t = t % static_cast<int32_t>(n_vocab);
  }
  const std::vector<int32_t> ta = {9, 2, 14}, tb = {3, 12}, tc = {0, 6, 13, 8};
  SeqKvViews va, vb, vc;
  store->Assign(ta, &va);
  store->Assign(tb, &vb);
  store->Assign(tc, &vc);

  // Step 1: a's whole prompt, b's whole prompt, the first 5 tokens of c (a chunk, no logits).
  std::vector<BatchSeq> step1 = {
      {.tokens = a, .n_past = 0, .kv = va.layers, .logits = true},
      {.tokens = b, .n_past = 0, .kv = vb.layers, .logits = true},
      {.tokens = std::span<const int32_t>(c).first(5),
       .n_past = 0,
       .kv = vc.layers,
       .logits = false},
  };
  auto out1 = e.Execute(step1);
  ASSERT_TRUE(out1.ok()) << out1.status().ToString();
  ASSERT_EQ(out1->size(), static_cast<size_t>(2 * n_vocab));
  std::vector<float> got_a(out1->begin(), out1->begin() + n_vocab),
      got_b(out1->begin() + n_vocab, out1->end());
  EXPECT_LT(MaxAbsDiff(got_a, AloneLogits(path, a)), 2e-3);
  EXPECT_LT(MaxAbsDiff(got_b, AloneLogits(path, b)), 2e-3);

  // Step 2: decode one token of a and b, and the rest of c's prompt.
  const int32_t next_a = 3 % n_vocab, next_b = 8 % n_vocab;
  std::vector<BatchSeq> step2 = {
      {.tokens = std::span<const int32_t>(&next_a, 1),
       .n_past = static_cast<int64_t>(a.size()),
       .kv = va.layers,
       .logits = true},
      {.tokens = std::span<const int32_t>(c).subspan(5),
       .n_past = 5,
       .kv = vc.layers,
       .logits = true},
      {.tokens = std::span<const int32_t>(&next_b, 1),
       .n_past = static_cast<int64_t>(b.size()),
       .kv = vb.layers,
       .logits = true},
  };
  auto out2 = e.Execute(step2);
  ASSERT_TRUE(out2.ok()) << out2.status().ToString();
  ASSERT_EQ(out2->size(), static_cast<size_t>(3 * n_vocab));
  std::vector<int32_t> a2 = a, b2 = b;
  a2.push_back(next_a);
  b2.push_back(next_b);
  EXPECT_LT(MaxAbsDiff(out2->subspan(0, n_vocab), AloneLogits(path, a2)), 2e-3);
  EXPECT_LT(MaxAbsDiff(out2->subspan(n_vocab, n_vocab), AloneLogits(path, c)), 2e-3);
  EXPECT_LT(MaxAbsDiff(out2->subspan(2 * n_vocab, n_vocab), AloneLogits(path, b2)), 2e-3);

  // Copy-on-write: fork a into a new table that shares a's first block and copies its second;
  // both continue with different tokens and see only their own history.
  store->CopyBlock(2, 7);
  const std::vector<int32_t> tf = {9, 7, 15};
  SeqKvViews vf;
  store->Assign(tf, &vf);
  const int32_t next_f = 5 % n_vocab;
  std::vector<BatchSeq> step3 = {
      {.tokens = std::span<const int32_t>(&next_f, 1),
       .n_past = static_cast<int64_t>(a2.size()),
       .kv = vf.layers,
       .logits = true},
  };
  auto out3 = e.Execute(step3);
  ASSERT_TRUE(out3.ok()) << out3.status().ToString();
  std::vector<int32_t> f2 = a2;
  f2.push_back(next_f);
  EXPECT_LT(MaxAbsDiff(*out3, AloneLogits(path, f2)), 2e-3);
}

TEST(BatchErrors, BadBatchesAreRejected) {
  auto eng = ModelRunner::Load(kDir + "tiny-llama-f32.gguf", {.n_threads = 1, .n_ctx = 64});
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  auto store = PagedKvStore::Create((*eng)->config(), 4, 4);
  ASSERT_TRUE(store.ok());
  SeqKvViews v;
  store->Assign(std::vector<int32_t>{0, 1}, &v);
  const int32_t bad = static_cast<int32_t>((*eng)->config().n_vocab);
  std::vector<BatchSeq> s = {
      {.tokens = std::span<const int32_t>(&bad, 1), .n_past = 0, .kv = v.layers}};
  EXPECT_FALSE((*eng)->Execute(s).ok());
  EXPECT_FALSE((*eng)->Execute({}).ok());
  std::vector<BatchSeq> no_views = {{.tokens = std::span<const int32_t>(&bad, 0), .n_past = 0}};
  EXPECT_FALSE((*eng)->Execute(no_views).ok());
  EXPECT_FALSE(PagedKvStore::Create((*eng)->config(), 0, 16).ok());
}

// An aborted pass returns Unavailable; evaluating the same positions again afterwards gives the
// logits of an uninterrupted pass (the partial K/V is overwritten).
TEST(BatchErrors, AbortedPassCanBeRedone) {
  const std::string path = kDir + "tiny-llama-f32.gguf";
  auto eng = ModelRunner::Load(path, {.n_threads = 2, .n_ctx = 64});
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  auto store = PagedKvStore::Create((*eng)->config(), 4, 4);
  ASSERT_TRUE(store.ok());
  SeqKvViews v;
  store->Assign(std::vector<int32_t>{2, 0}, &v);
  const std::vector<int32_t> tokens = {3, 1, 4, 1, 5};
  std::vector<BatchSeq> s = {{.tokens = tokens, .n_past = 0, .kv = v.layers, .logits = true}};
  std::atomic<bool> abort{true};
  auto aborted = (*eng)->Execute(s, &abort);
  ASSERT_FALSE(aborted.ok());
  EXPECT_EQ(aborted.status().code(), StatusCode::kUnavailable);
  abort.store(false);
  // Whatever an aborted pass left in those positions (here: the K/V of other tokens, written by a
  // complete pass) is overwritten when they are evaluated again.
  const std::vector<int32_t> other = {7, 7, 2, 6, 0};
  std::vector<BatchSeq> stale = {{.tokens = other, .n_past = 0, .kv = v.layers, .logits = true}};
  ASSERT_TRUE((*eng)->Execute(stale, &abort).ok());
  auto redone = (*eng)->Execute(s, &abort);
  ASSERT_TRUE(redone.ok()) << redone.status().ToString();
  EXPECT_LT(MaxAbsDiff(*redone, AloneLogits(path, tokens)), 2e-3);
}

INSTANTIATE_TEST_SUITE_P(Tiny, BatchTest,
                         ::testing::Values("tiny-llama-f32", "tiny-llama-q", "tiny-gemma3-f32",
                                           "tiny-gemma3-q", "tiny-qwen2-f32"));

}  // namespace
}  // namespace gannet::engine
