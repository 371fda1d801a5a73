#include "sampling/logprobs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace gannet {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// log_softmax computed directly in long double.
std::vector<long double> LogSoftmax(const std::vector<float>& logits) {
  long double z = 0.0L;
  for (float l : logits) z += std::exp(static_cast<long double>(l));
  std::vector<long double> out;
  for (float l : logits) out.push_back(l - std::log(z));
  return out;
}

TEST(LogprobsTest, MatchesDirectComputation) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> dist(0.0f, 4.0f);
  std::vector<float> logits(1000);
  for (float& l : logits) l = dist(rng);
  const std::vector<long double> want = LogSoftmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });

  std::vector<TokenLogprob> top;
  float chosen = 0.0f;
  TopLogprobs(logits, 123, 20, top, &chosen);
  EXPECT_NEAR(chosen, static_cast<double>(want[123]), 1e-5);
  ASSERT_EQ(top.size(), 20u);
  for (size_t i = 0; i < top.size(); ++i) {
    EXPECT_EQ(top[i].id, order[i]);
    EXPECT_NEAR(top[i].logprob, static_cast<double>(want[order[i]]), 1e-5);
  }
  // Probabilities sum to one.
  long double total = 0.0L;
  for (size_t i = 0; i < logits.size(); ++i) {
    TopLogprobs(logits, static_cast<int32_t>(i), 0, top, &chosen);
    total += std::exp(static_cast<long double>(chosen));
  }
  EXPECT_TRUE(top.empty());
  EXPECT_NEAR(static_cast<double>(total), 1.0, 1e-4);
}

TEST(LogprobsTest, TiesBannedAndEdges) {
  const std::vector<float> logits = {1.0f, 2.0f, -kInf, 2.0f, std::nanf(""), 1.0f};
  std::vector<TokenLogprob> top;
  float chosen = 0.0f;
  TopLogprobs(logits, 2, 10, top, &chosen);
  EXPECT_EQ(chosen, -kInf);   // banned
  ASSERT_EQ(top.size(), 4u);  // -inf and NaN are never listed
  EXPECT_EQ(top[0].id, 1);
  EXPECT_EQ(top[1].id, 3);
  EXPECT_EQ(top[2].id, 0);
  EXPECT_EQ(top[3].id, 5);
  const double lse = std::log(2 * std::exp(1.0) + 2 * std::exp(2.0));
  EXPECT_NEAR(top[0].logprob, 2.0 - lse, 1e-6);
  EXPECT_NEAR(top[3].logprob, 1.0 - lse, 1e-6);

  TopLogprobs(logits, 99, 1, top, &chosen);
  EXPECT_EQ(chosen, -kInf);  // out of range
  ASSERT_EQ(top.size(), 1u);
  TopLogprobs(logits, 1, 2, top, nullptr);  // no chosen output wanted
  EXPECT_EQ(top.size(), 2u);

  const std::vector<float> banned(3, -kInf);
  TopLogprobs(banned, 0, 3, top, &chosen);
  EXPECT_TRUE(top.empty());
  EXPECT_EQ(chosen, -kInf);
}

TEST(LogprobsTest, ExtremeLogitsStayFinite) {
  const std::vector<float> logits = {1000.0f, -1000.0f, 999.0f};
  std::vector<TokenLogprob> top;
  float chosen = 0.0f;
  TopLogprobs(logits, 1, 3, top, &chosen);
  EXPECT_NEAR(top[0].logprob, -std::log1p(std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(chosen, -2000.0 - std::log1p(std::exp(-1.0)), 1e-2);
}

// Large rows, where the top-n scan passes over spans: the plain full sort's top n (logit
// descending, id ascending), with NaN and -inf never listed and ties across spans.
TEST(LogprobsTest, TopNOfLargeRowsIsTheFullSortsPrefix) {
  std::mt19937_64 rng(8);
  for (int size : {33, 4097, 262144}) {
    for (int n : {1, 5, 64}) {
      SCOPED_TRACE(testing::Message() << "size " << size << " n " << n);
      std::vector<float> logits(static_cast<size_t>(size));
      std::uniform_int_distribution<int> level(0, 300);
      for (float& l : logits) {
        const int v = level(rng);
        l = v == 0 ? std::nanf("") : v == 1 ? -kInf : static_cast<float>(v) * 0.05f;
      }
      std::vector<int32_t> order;
      for (int32_t id = 0; id < size; ++id) {
        if (logits[static_cast<size_t>(id)] > -kInf) order.push_back(id);
      }
      std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
        return la > lb || (la == lb && a < b);
      });
      double z = 0;
      for (int32_t id : order) z += std::exp(static_cast<double>(logits[static_cast<size_t>(id)]));
      std::vector<TokenLogprob> top;
      float chosen = 0;
      TopLogprobs(logits, order.back(), n, top, &chosen);
      const size_t listed = std::min(order.size(), static_cast<size_t>(n));  // usable ones only
      ASSERT_EQ(top.size(), listed);
      for (size_t i = 0; i < listed; ++i) {
        EXPECT_EQ(top[i].id, order[i]) << i;
        const double want = logits[static_cast<size_t>(order[i])] - std::log(z);
        EXPECT_NEAR(top[i].logprob, want, 1e-5) << i;
      }
      EXPECT_NEAR(chosen, logits[static_cast<size_t>(order.back())] - std::log(z), 1e-5);
    }
  }
}

}  // namespace
}  // namespace gannet
