#include "sampling/row_scan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "sampling/row_scan_internal.h"

namespace gannet::sampling {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Rows of awkward sizes (around every target's steps of 8, 16 and 32 and their tails) with NaN,
// -inf, signed zeros and few distinct values, so maxima tie across lanes.
std::vector<std::vector<float>> AwkwardRows() {
  std::mt19937_64 rng(11);
  std::vector<std::vector<float>> rows;
  for (int n : {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 255, 4097, 262144}) {
    for (int trial = 0; trial < 6; ++trial) {
      std::vector<float> row(static_cast<size_t>(n));
      std::uniform_int_distribution<int> kind(0, trial % 3 == 0 ? 4 : 40);
      for (float& l : row) {
        const int k = kind(rng);
        l = k == 0 ? std::nanf("") : k == 1 ? -kInf : k == 2 ? 0.0f : k == 3 ? -0.0f : k * 0.5f - 9;
      }
      if (trial == 4) row.back() = 100.0f;  // the maximum in the tail
      if (trial == 5) std::fill(row.begin(), row.end(), -kInf);
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

TEST(RowScanTest, ArgmaxAndMaxAreThePlainLoops) {
  for (const std::vector<float>& row : AwkwardRows()) {
    SCOPED_TRACE(row.size());
    int32_t best = 0;
    float best_logit = -kInf;
    for (size_t i = 0; i < row.size(); ++i) {
      if (row[i] > best_logit) {
        best_logit = row[i];
        best = static_cast<int32_t>(i);
      }
    }
    EXPECT_EQ(ArgmaxUsable(row), best);
    EXPECT_EQ(MaxUsable(row), best_logit);  // == : a signed zero may come from either lane
    for (const internal::RowScans& t : internal::AvailableRowScans()) {
      EXPECT_EQ(t.argmax(row.data(), row.size()), best) << t.target;
      EXPECT_EQ(t.max(row.data(), row.size()), best_logit) << t.target;
    }
  }
}

TEST(RowScanTest, AnyAboveIsThePlainTest) {
  std::mt19937_64 rng(12);
  std::uniform_int_distribution<int> pos(0, kScanSpan - 1);
  std::vector<float> span(kScanSpan);
  for (int trial = 0; trial < 200; ++trial) {
    std::fill(span.begin(), span.end(), trial % 2 == 0 ? 1.0f : std::nanf(""));
    if (trial % 4 < 2) span[static_cast<size_t>(pos(rng))] = 3.0f;   // one above, anywhere
    if (trial % 8 == 7) span[static_cast<size_t>(pos(rng))] = 2.0f;  // equal: not above
    bool want = false;
    for (float l : span) want = want || l > 2.0f;
    EXPECT_EQ(AnyAbove(span.data(), 2.0f), want) << "trial " << trial;
  }
}

TEST(RowScanTest, ExpOfEachTermIsWithinAFewUlp) {
  // One-term rows: SumExpBelow({x}, 0) = exp(x) as the polynomial computes it.
  double worst = 0;
  for (float x = 0.0f; x >= -87.0f; x -= 0.0137f) {
    const float row[1] = {x};
    const double got = SumExpBelow(row, 0.0f);
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(got - want) / want);
  }
  EXPECT_LT(worst, 3.0 * std::ldexp(1.0, -24));  // 3 ulp of a float near 1
  const float one[1] = {0.0f};
  EXPECT_EQ(SumExpBelow(one, 0.0f), 1.0);
  const float negligible[3] = {-88.0f, -1000.0f, -kInf};  // count as 0
  EXPECT_EQ(SumExpBelow(negligible, 0.0f), 0.0);
}

TEST(RowScanTest, SumExpMatchesDoublePrecision) {
  for (const std::vector<float>& row : AwkwardRows()) {
    SCOPED_TRACE(row.size());
    const float max = MaxUsable(row);
    if (!(max > -kInf)) {
      EXPECT_EQ(SumExpBelow(row, 0.0f), 0.0);
      continue;
    }
    double want = 0;
    for (float l : row) {
      if (l > -kInf) want += std::exp(static_cast<double>(l) - max);
    }
    EXPECT_NEAR(SumExpBelow(row, max), want, want * 4e-7);
  }
}

TEST(RowScanTest, TemperedWeightsMatchDoublePrecision) {
  for (double inv_t : {0.5, 1.0, 1.25, 10.0}) {
    for (const std::vector<float>& row : AwkwardRows()) {
      SCOPED_TRACE(testing::Message() << "n " << row.size() << " inv_t " << inv_t);
      const float max = MaxUsable(row);
      if (!(max > -kInf)) {
        EXPECT_EQ(SumTemperedExp(row, 0.0f, inv_t), 0.0);
        continue;
      }
      double want = 0;
      for (float l : row) {
        if (l > -kInf) want += std::exp((static_cast<double>(l) - max) * inv_t);
      }
      EXPECT_NEAR(SumTemperedExp(row, max, inv_t), want, want * 1e-6);
      // The walk's terms are the sums' terms.
      double terms = 0;
      for (float l : row) terms += TemperedExp(l, max, inv_t);
      EXPECT_NEAR(terms, SumTemperedExp(row, max, inv_t), want * 1e-12);
    }
  }
  // A block's weights are the one-logit weights, to the bit.
  for (const std::vector<float>& row : AwkwardRows()) {
    const float max = MaxUsable(row) > -kInf ? MaxUsable(row) : 0.0f;
    std::vector<float> block(row.size());
    TemperedExps(row.data(), row.size(), max, 1.25, block.data());
    for (size_t i = 0; i < row.size(); ++i) {
      ASSERT_EQ(block[i], TemperedExp(row[i], max, 1.25)) << "n " << row.size() << " i " << i;
    }
  }
  // A tiny temperature: the maximum weighs 1 and everything else 0, never NaN.
  const float row[5] = {1.0f, 3.0f, 2.999f, -kInf, std::nanf("")};
  for (int i = 0; i < 5; ++i) {
    const float w = TemperedExp(row[i], 3.0f, 1e40);
    EXPECT_EQ(w, i == 1 ? 1.0f : 0.0f) << i;
  }
  EXPECT_EQ(SumTemperedExp(row, 3.0f, 1e40), 1.0);
}

// Every CPU target's exponentials give the baseline's bits, so a seeded draw is the same on every
// machine: each term, and each sum (the 16 double lanes and their reduction tree), on rows whose
// lengths fall around every width's body and tail.
TEST(RowScanTest, EveryTargetGivesTheBaselineBits) {
  const std::vector<internal::RowScans>& targets = internal::AvailableRowScans();
  ASSERT_FALSE(targets.empty());
  const internal::RowScans base = internal::BaselineRowScans();
  EXPECT_STREQ(targets.front().target, base.target);
  // The awkward rows hold few distinct values; these hold a million.
  std::vector<std::vector<float>> rows = AwkwardRows();
  std::mt19937_64 rng(13);
  for (float spread : {0.3f, 3.0f, 30.0f}) {
    std::normal_distribution<float> logit(0.0f, spread);
    for (size_t n : {size_t{262144}, size_t{262144 + 13}}) {
      std::vector<float> row(n);
      for (float& l : row) l = logit(rng);
      rows.push_back(std::move(row));
    }
  }
  for (const internal::RowScans& t : targets) {
    std::printf("target %s\n", t.target);
    for (float s : {1.0f, 0.8f, 1.7f, 1e30f}) {
      for (const std::vector<float>& row : rows) {
        SCOPED_TRACE(testing::Message() << t.target << " n " << row.size() << " s " << s);
        const float max = MaxUsable(row) > -kInf ? MaxUsable(row) : 0.0f;
        const double want = base.sum_tempered_exp(row.data(), row.size(), max, s);
        const double got = t.sum_tempered_exp(row.data(), row.size(), max, s);
        EXPECT_EQ(std::memcmp(&want, &got, sizeof(double)), 0) << want << " " << got;
        std::vector<float> want_terms(row.size()), got_terms(row.size() + 1, 7.0f);
        base.tempered_exps(row.data(), row.size(), max, s, want_terms.data());
        t.tempered_exps(row.data(), row.size(), max, s, got_terms.data());
        EXPECT_EQ(std::memcmp(want_terms.data(), got_terms.data(), row.size() * sizeof(float)), 0);
        EXPECT_EQ(got_terms.back(), 7.0f);  // nothing written past the row
      }
    }
  }
}

}  // namespace
}  // namespace gannet::sampling
