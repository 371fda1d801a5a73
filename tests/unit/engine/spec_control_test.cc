#include "engine/spec_control.h"

#include <gtest/gtest.h>

#include <vector>

namespace gannet::engine {
namespace {

TEST(SpecCostModelTest, FitsFixedAndPerRowTime) {
  SpecCostModel m;
  // Defaults before anything is observed: one sequence drafts, a batch waits for measurements.
  EXPECT_GT(m.Threshold(1, 1), 0.0);
  EXPECT_LT(m.Threshold(1, 1), 0.5);
  EXPECT_GE(m.Threshold(16, 16), 1.0);
  SpecCostModel warming;
  warming.Observe(16, 0.05);
  warming.Observe(16, 0.05);
  EXPECT_GE(warming.Threshold(16, 16), 1.0);
  warming.Observe(16, 0.05);
  EXPECT_LT(warming.Threshold(16, 16), 1.0);  // the prior share, now that steps were measured
  for (int k = 0; k < 200; ++k) {
    const int rows = 1 + k % 9;
    m.Observe(rows, 0.010 + 0.002 * rows);
  }
  EXPECT_NEAR(m.per_row_seconds(), 0.002, 1e-6);
  EXPECT_NEAR(m.fixed_seconds(), 0.010, 1e-6);
  // One sequence, one row: a draft row costs 2 of the step's 12 ms.
  EXPECT_NEAR(m.Threshold(1, 1), 0.002 / 0.012, 1e-6);
  // Sixteen sequences in a 16-row step: a row costs about a sequence's share of the step.
  EXPECT_NEAR(m.Threshold(16, 16), 16 * 0.002 / 0.042, 1e-6);
  // Garbage is ignored.
  m.Observe(0, 1.0);
  m.Observe(3, -1.0);
  EXPECT_NEAR(m.per_row_seconds(), 0.002, 1e-6);
}

TEST(SpecCostModelTest, RowsThatNeverVaryUseThePriorShare) {
  SpecCostModel m;
  for (int k = 0; k < 50; ++k) m.Observe(1, 0.011);
  EXPECT_NEAR(m.fixed_seconds() + m.per_row_seconds(), 0.011, 1e-9);
  EXPECT_NEAR(m.per_row_seconds() / m.fixed_seconds(), 0.1, 1e-9);
}

TEST(SpecCostModelTest, ChargesTheDraftModelsTimeToEachDraftRow) {
  SpecCostModel m;
  for (int k = 0; k < 200; ++k) {
    const int rows = 1 + k % 9;
    m.Observe(rows, 0.010 + 0.002 * rows);
  }
  EXPECT_EQ(m.draft_seconds_per_token(), 0.0);
  // A draft model that takes 8 ms for 8 draft tokens: 1 ms per draft row on top of its 2 ms.
  for (int k = 0; k < 50; ++k) m.ObserveDraft(8, 0.008);
  EXPECT_NEAR(m.draft_seconds_per_token(), 0.001, 1e-9);
  EXPECT_NEAR(m.Threshold(1, 1), (0.002 + 0.001) / 0.012, 1e-6);
  m.ObserveDraft(0, 1.0);  // garbage is ignored
  m.ObserveDraft(4, -1.0);
  EXPECT_NEAR(m.draft_seconds_per_token(), 0.001, 1e-9);
}

TEST(SpecControllerTest, GrowsWhileAcceptedAndPausesWhenNot) {
  SpecController c(16);
  int32_t b = c.NextBudget(0.1);
  EXPECT_EQ(b, 4);
  c.Observe(b, b);  // all accepted
  EXPECT_EQ(c.NextBudget(0.1), 8);
  c.Observe(8, 8);
  EXPECT_EQ(c.NextBudget(0.1), 16);
  c.Observe(16, 16);
  EXPECT_EQ(c.NextBudget(0.1), 16);  // capped
  // Nothing accepted for a while: the yield falls under the threshold and drafting pauses, for
  // longer each time, with a small probe in between.
  std::vector<int32_t> budgets;
  for (int step = 0; step < 60; ++step) {
    const int32_t n = c.NextBudget(0.1);
    budgets.push_back(n);
    if (n > 0) c.Observe(n, 0);
  }
  int drafted = 0;
  for (int32_t n : budgets) drafted += n > 0 ? 1 : 0;
  EXPECT_LT(drafted, 12);
  EXPECT_EQ(budgets.back(), 0);
  // Where a row costs more than it can yield, nothing is drafted at all.
  SpecController costly(8);
  EXPECT_EQ(costly.NextBudget(0.9), 0);
  // Off.
  SpecController off(0);
  EXPECT_EQ(off.NextBudget(0.0), 0);
}

TEST(SpecControllerTest, RecoversWhenDraftsStartPayingAgain) {
  SpecController c(8);
  for (int step = 0; step < 20; ++step) {
    const int32_t n = c.NextBudget(0.2);
    if (n > 0) c.Observe(n, 0);
  }
  int drafted = 0;
  for (int step = 0; step < 200; ++step) {
    const int32_t n = c.NextBudget(0.2);
    if (n > 0) {
      c.Observe(n, n);
      ++drafted;
    }
  }
  EXPECT_GT(drafted, 150);  // after a probe succeeds, every step drafts again
}

TEST(SpecControllerTest, NoProbeWhileNoAcceptanceCouldPay) {
  SpecController c(8);
  // A compute-bound batch: a draft row costs more than the one token it can yield. Drafts that
  // would all be accepted are still never made, probes included.
  int drafted = 0;
  for (int step = 0; step < 300; ++step) {
    const int32_t n = c.NextBudget(0.9);
    if (n > 0) {
      c.Observe(n, n);
      ++drafted;
    }
  }
  EXPECT_EQ(drafted, 0);
  // The batch shrinks: drafting starts at once.
  EXPECT_EQ(c.NextBudget(0.2), 4);
}

}  // namespace
}  // namespace gannet::engine
