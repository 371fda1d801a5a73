// MaskPrefetcher: every task's mask is exactly MaskCache::FillNextTokenMask's, whichever of the
// worker and the caller fills it, with Ensure called from several threads in any order, with
// tasks never ensured (Finish drops or waits for them) and with the worker turned off.
#include "engine/grammar_masks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/token_mask.h"

namespace gannet::engine {
namespace {

// Strings whose bodies loop (the mask cache's fast path) and a bounded repetition (its exact
// walk), so both kinds of mask are prefetched.
const char kGrammar[] = R"g(
root ::= "{" pair ("," pair)* "}"
pair ::= "\"" [a-z]{1,12} "\":" (num | str)
num ::= [0-9]+
str ::= "\"" [^"\\]* "\""
)g";

std::vector<std::string> Vocabulary(std::mt19937* rng) {
  const std::string units[] = {"{", "}", "\"", ",", ":", "a", "b", "q", "z", "0", "7", " ", "\\"};
  std::vector<std::string> v(std::begin(units), std::end(units));
  std::uniform_int_distribution<size_t> pick(0, std::size(units) - 1);
  std::uniform_int_distribution<int> len(2, 6);
  while (v.size() < 3000) {
    std::string t;
    for (int n = len(*rng); n > 0; --n) t += units[pick(*rng)];
    v.push_back(t);
  }
  v.push_back("</s>");
  return v;
}

class MaskPrefetcherTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::mt19937 rng(7);
    std::vector<std::string> tokens = Vocabulary(&rng);
    const int32_t eog = static_cast<int32_t>(tokens.size()) - 1;
    auto vocab = grammar::TokenVocabulary::Create(tokens, std::vector<int32_t>{eog});
    ASSERT_TRUE(vocab.ok()) << vocab.status().ToString();
    auto g = grammar::Grammar::Compile(kGrammar);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    cache_ = std::make_unique<grammar::MaskCache>(*vocab, *g);
    // Matchers at many states: random walks of allowed tokens from the start.
    auto start = grammar::Matcher::Create(*g);
    ASSERT_TRUE(start.ok());
    std::vector<uint32_t> mask((*vocab)->mask_words());
    for (int walk = 0; walk < 24; ++walk) {
      grammar::Matcher m = *start;
      for (int step = 0; step < walk; ++step) {
        ASSERT_TRUE(cache_->FillNextTokenMask(m, mask));
        std::vector<int32_t> allowed;
        for (int32_t t = 0; t < eog; ++t) {
          if ((mask[t / 32] >> (t % 32)) & 1u) allowed.push_back(t);
        }
        if (allowed.empty()) break;
        ASSERT_TRUE((*vocab)->AcceptToken(&m, allowed[rng() % allowed.size()]));
      }
      matchers_.push_back(std::move(m));
    }
    for (const grammar::Matcher& m : matchers_) {
      expected_.emplace_back((*vocab)->mask_words());
      ASSERT_TRUE(cache_->FillNextTokenMask(m, expected_.back()));
    }
  }
  std::unique_ptr<grammar::MaskCache> cache_;
  std::vector<grammar::Matcher> matchers_;
  std::vector<std::vector<uint32_t>> expected_;
};

TEST_P(MaskPrefetcherTest, MasksAreExactWhoeverFillsThem) {
  MaskPrefetcher prefetch(GetParam());
  EXPECT_EQ(prefetch.enabled(), GetParam());
  std::mt19937 rng(11);
  const size_t words = cache_->vocab().mask_words();
  for (int batch = 0; batch < 60; ++batch) {
    // A batch of a random subset of the matchers, each mask buffer garbage first.
    std::vector<size_t> pick(matchers_.size());
    for (size_t i = 0; i < pick.size(); ++i) pick[i] = i;
    std::shuffle(pick.begin(), pick.end(), rng);
    pick.resize(1 + rng() % pick.size());
    std::vector<std::vector<uint32_t>> masks(pick.size(), std::vector<uint32_t>(words, 0xA5A5A5A5));
    std::vector<MaskPrefetcher::Task> tasks;
    for (size_t k = 0; k < pick.size(); ++k) {
      tasks.push_back({.cache = cache_.get(), .matcher = &matchers_[pick[k]], .mask = masks[k]});
    }
    prefetch.Start(tasks);
    // Sometimes give the worker a head start; ensure from two threads, in opposite orders, all
    // tasks but (in odd batches) the last few, which Finish must drop or wait for.
    if (batch % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    const size_t ensured = batch % 2 == 0 ? pick.size() : pick.size() / 2;
    std::thread other([&] {
      for (size_t k = ensured; k-- > ensured / 2;) prefetch.Ensure(k);
    });
    for (size_t k = 0; k < ensured / 2; ++k) prefetch.Ensure(k);
    other.join();
    for (size_t k = 0; k < ensured; ++k) EXPECT_EQ(masks[k], expected_[pick[k]]) << batch << k;
    prefetch.Finish();
    // After Finish nothing writes a mask any more: each is either untouched or complete.
    const std::vector<std::vector<uint32_t>> after = masks;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    EXPECT_EQ(masks, after);
    for (size_t k = ensured; k < pick.size(); ++k) {
      if (masks[k] != std::vector<uint32_t>(words, 0xA5A5A5A5)) {
        EXPECT_EQ(masks[k], expected_[pick[k]]) << batch << k;
      }
    }
  }
  prefetch.Finish();  // idempotent
}

TEST_P(MaskPrefetcherTest, EmptyBatchesAndDestructionMidBatch) {
  auto prefetch = std::make_unique<MaskPrefetcher>(GetParam());
  prefetch->Start({});
  prefetch->Finish();
  std::vector<std::vector<uint32_t>> masks(matchers_.size(),
                                           std::vector<uint32_t>(cache_->vocab().mask_words()));
  std::vector<MaskPrefetcher::Task> tasks;
  for (size_t k = 0; k < matchers_.size(); ++k) {
    tasks.push_back({.cache = cache_.get(), .matcher = &matchers_[k], .mask = masks[k]});
  }
  prefetch->Start(tasks);
  prefetch.reset();  // finishes the batch and joins before the masks go
}

INSTANTIATE_TEST_SUITE_P(WorkerOnAndOff, MaskPrefetcherTest, ::testing::Bool());

}  // namespace
}  // namespace gannet::engine
