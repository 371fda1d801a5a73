#include "engine/spec_control.h"

#include <gtest/gtest.h>

#include <random>
#include <utility>
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
  // Sixteen sequences in a 16-row step: a row costs about a sequence's share of the step, and a
  // batch's bar carries a margin (1.25) for what draft rows cost beyond the fit.
  EXPECT_NEAR(m.Threshold(16, 16), 1.25 * 16 * 0.002 / 0.042, 1e-6);
  EXPECT_NEAR(m.Threshold(2, 2), 1.25 * 2 * 0.002 / 0.014, 1e-6);
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
  // Draft rows that cost no model pass (n-gram drafts beside a model's) are not charged its time.
  EXPECT_NEAR(m.Threshold(1, 1, /*charge_draft=*/false), 0.002 / 0.012, 1e-6);
  m.ObserveDraft(0, 1.0);  // garbage is ignored
  m.ObserveDraft(4, -1.0);
  EXPECT_NEAR(m.draft_seconds_per_token(), 0.001, 1e-9);
}

TEST(SpecControllerTest, BestLengthWeighsAcceptanceAgainstRowCost) {
  // (1 + p + ... + p^k) / (1 + c k) at p = 0.8, c = 0.25: 1.44, 1.63, 1.687, 1.681, ...
  EXPECT_EQ(SpecController::BestLength(0.8, 0.25, 16), 3);
  // Free rows: as long as allowed; always accepted: as long as allowed while a row costs less
  // than a token.
  EXPECT_EQ(SpecController::BestLength(0.3, 0.0, 16), 16);
  EXPECT_EQ(SpecController::BestLength(1.0, 0.5, 8), 8);
  // A row costs a token's share or more: nothing pays.
  EXPECT_EQ(SpecController::BestLength(1.0, 1.0, 8), 0);
  EXPECT_EQ(SpecController::BestLength(0.5, 0.6, 8), 0);
  // Costlier rows never lengthen the draft.
  for (const double p : {0.3, 0.6, 0.9, 0.99}) {
    int32_t last = 64;
    for (double c = 0.0; c <= 1.2; c += 0.05) {
      const int32_t k = SpecController::BestLength(p, c, 64);
      EXPECT_LE(k, last) << "p " << p << " c " << c;
      last = k;
    }
  }
}

TEST(SpecControllerTest, GrowsWhileAcceptedAndPausesWhenNot) {
  SpecController c(16);
  int32_t b = c.NextBudget(0.1);
  EXPECT_GE(b, 1);
  EXPECT_LT(b, 16);  // the prior acceptance is modest
  for (int step = 0; step < 6; ++step) {
    c.Observe(b, b);  // all accepted
    const int32_t next = c.NextBudget(0.1);
    EXPECT_GE(next, b);
    b = next;
  }
  EXPECT_EQ(b, 16);
  // Nothing accepted for a while: the acceptance falls and drafting pauses, for longer each
  // time, with a small probe in between.
  std::vector<int32_t> budgets;
  for (int step = 0; step < 60; ++step) {
    const int32_t n = c.NextBudget(0.1);
    budgets.push_back(n);
    if (n > 0) c.Observe(n, 0);
  }
  // The drafts shrink as the estimate falls (one rejection is one failed trial against the many
  // tokens accepted before), then stop but for probes.
  int drafted = 0, tokens = 0;
  for (size_t i = 0; i < budgets.size(); ++i) {
    drafted += budgets[i] > 0 ? 1 : 0;
    tokens += budgets[i];
    if (i > 0 && budgets[i] > 0 && budgets[i - 1] > 0) {
      EXPECT_LE(budgets[i], budgets[i - 1]);
    }
  }
  EXPECT_LT(drafted, 24);
  EXPECT_LT(tokens, 120);
  EXPECT_EQ(budgets.back(), 0);
  int last_run = 0;  // the steps since the last draft
  while (last_run < 60 && budgets[budgets.size() - 1 - last_run] == 0) ++last_run;
  EXPECT_GE(last_run, 4);  // probes only, after growing pauses
  // Where a row costs more than the prior acceptance can yield, nothing is drafted.
  SpecController costly(8);
  EXPECT_EQ(costly.NextBudget(0.9), 0);
  // Off: no cost, the most tokens.
  SpecController off(8);
  EXPECT_EQ(off.NextBudget(0.0), 8);
  SpecController none(0);
  EXPECT_EQ(none.NextBudget(0.0), 0);
}

TEST(SpecControllerTest, ProbesBackOffWhileTheyFail) {
  SpecController c(8);
  int drafted = 0;
  for (int step = 0; step < 200; ++step) {
    const int32_t n = c.NextBudget(0.3);
    if (n > 0) {
      c.Observe(n, 0);
      ++drafted;
    }
  }
  EXPECT_LT(drafted, 10);  // pauses of 1, 2, 4, ... 64 steps
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
    const int32_t n = c.NextBudget(0.97);
    if (n > 0) {
      c.Observe(n, n);
      ++drafted;
    }
  }
  EXPECT_EQ(drafted, 0);
  // The batch shrinks: drafting starts at once.
  EXPECT_GT(c.NextBudget(0.2), 0);
}

TEST(SpecControllerTest, NoProbeWhereADraftOfUnknownAcceptanceWouldNotPay) {
  SpecController c(8);
  // While the batch is small, this class's drafts are all rejected.
  for (int step = 0; step < 20; ++step) {
    const int32_t k = c.Keep(2, 0.2, 8);
    if (k > 0) c.Observe(k, 0);
  }
  // Drafts (all rejected) over 300 steps at a row cost of `threshold`.
  auto drafts = [&c](double threshold) {
    int n = 0;
    for (int step = 0; step < 300; ++step) {
      const int32_t k = c.Keep(2, threshold, 8);
      if (k > 0) {
        ++n;
        c.Observe(k, 0);
      }
    }
    return n;
  };
  // The batch grows: a draft row costs 0.7 of a sequence's share. Drafts that are always accepted
  // would still pay, but one of the prior's acceptance would not, so neither would a probe.
  EXPECT_EQ(drafts(0.7), 0);
  // Small again: probes go on, after growing pauses.
  const int probes = drafts(0.2);
  EXPECT_GT(probes, 0);
  EXPECT_LT(probes, 10);
}

TEST(SpecControllerTest, ALoneSequenceProbesACostlyDrafterAgain) {
  // A draft row costs 0.7 of a step (a self draft's pass plus its row): drafting pays only above
  // ~0.93 acceptance, and a draft of the prior's acceptance never would.
  constexpr double kThreshold = 0.7;
  // Drafts of `p` acceptance per token (a chain: each token accepted with chance p given its
  // parent was) over 300 steps; returns the draft tokens made and accepted.
  auto run = [](SpecController& c, double p, bool lone, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::bernoulli_distribution accept(p);
    std::pair<int, int> made{0, 0};
    for (int step = 0; step < 300; ++step) {
      const int32_t k = c.NextBudget(kThreshold, lone);
      if (k <= 0) continue;
      int32_t j = 0;
      while (j < k && accept(rng)) ++j;
      c.Observe(k, j);
      made.first += k;
      made.second += j;
    }
    return made;
  };
  // Its drafts were judged poor once (text it drafted badly).
  auto judged_poor = [] {
    SpecController c(8);
    for (int step = 0; step < 20; ++step) {
      const int32_t k = c.NextBudget(0.1);
      if (k > 0) c.Observe(k, 0);
    }
    return c;
  };
  // Now the text is one it drafts right 97 times in 100. In a batch no probe is made (a probe
  // there costs a row of every sequence's worth); alone it probes, sees the drafts accepted and
  // drafts in full again.
  SpecController batch = judged_poor();
  EXPECT_EQ(run(batch, 0.97, /*lone=*/false, 1).first, 0);
  SpecController lone = judged_poor();
  const auto [made, accepted] = run(lone, 0.97, /*lone=*/true, 1);
  EXPECT_GT(made, 1200);               // most of the 300 steps draft 8 tokens
  EXPECT_GT(accepted, made * 8 / 10);  // 0.97 per token: 7 of a chain of 8
  // Text it drafts badly: the probes back off (pauses of 1, 2, 4, ... 64 steps), 6 probes of 2
  // tokens in 300 steps. A lucky probe (both tokens accepted, 9 times in 100) restarts the pauses
  // only once the estimate is back at the prior's; restarting them on any lucky probe made 10-20
  // probes on 4 of these 10 seeds.
  int total = 0;
  for (uint64_t seed = 2; seed < 12; ++seed) {
    SpecController poor = judged_poor();
    const int n = run(poor, 0.3, /*lone=*/true, seed).first;
    EXPECT_LE(n, 2 * 15) << "seed " << seed;
    total += n;
  }
  EXPECT_LE(total, 2 * 8 * 10);
}

TEST(SpecControllerTest, FreeDraftsAreMadeWheneverADraftCouldPay) {
  SpecController c(16);
  EXPECT_EQ(c.FreeBudget(0.2), 16);
  EXPECT_EQ(c.FreeBudget(0.0), 16);  // the control is off
  EXPECT_EQ(c.FreeBudget(0.97), 0);  // a draft row costs more than the token it may yield
  EXPECT_EQ(SpecController(0).FreeBudget(0.2), 0);
}

TEST(SpecControllerTest, EachClassOfDraftKeepsItsOwnAcceptance) {
  // N-gram drafts behind a 4-token match are always accepted; those behind a 1-token match never
  // are. Each class's drafts are cut to what its own acceptance pays for.
  SpecController c(16);
  int32_t long_kept = 0, short_kept = 0;
  for (int step = 0; step < 60; ++step) {
    const bool strong = step % 2 == 0;
    const int32_t k = c.Keep(strong ? 4 : 1, 0.2, 16);
    if (k > 0) c.Observe(k, strong ? k : 0);
    if (step >= 40) (strong ? long_kept : short_kept) += k;
  }
  EXPECT_GT(c.acceptance(4), 0.95);
  EXPECT_LT(c.acceptance(1), 0.2);
  EXPECT_GE(long_kept, 10 * 8);             // near the whole proposal, every time
  EXPECT_LE(short_kept, 2 * 2);             // at most a probe or two
  EXPECT_NEAR(c.acceptance(0), 0.6, 1e-9);  // model drafts' estimate untouched (the prior)
  // A proposal shorter than the budget is kept whole at most.
  EXPECT_LE(c.Keep(4, 0.2, 3), 3);
  // Classes past the last count as the last; the control off keeps everything.
  SpecController off(8);
  EXPECT_EQ(off.Keep(9, 0.0, 5), 5);
}

TEST(SpecControllerTest, NewSequencesStartFromTheSharedAcceptance) {
  // The engine's shared controller has seen long-match drafts always accepted and short-match
  // ones never.
  SpecController shared(0);
  for (int i = 0; i < 20; ++i) {
    shared.ObserveClass(4, 8, 8);
    shared.ObserveClass(1, 4, 0);
  }
  EXPECT_GT(shared.acceptance(4), 0.95);
  EXPECT_LT(shared.acceptance(1), 0.05);
  EXPECT_NEAR(shared.acceptance(0), 0.6, 1e-9);  // no model drafts seen: the prior
  SpecController fresh(16), seeded(16);
  seeded.SeedFrom(shared);
  // A new sequence's first long-match draft: the prior's 0.6 pays for a few tokens, the shared
  // acceptance for many more; its first short-match draft is not made at all.
  const int32_t unseeded_long = fresh.Keep(4, 0.1, 16);
  const int32_t seeded_long = seeded.Keep(4, 0.1, 16);
  EXPECT_LE(unseeded_long, 4);
  EXPECT_GE(seeded_long, 2 * unseeded_long);
  EXPECT_GT(fresh.Keep(1, 0.1, 16), 0);
  EXPECT_EQ(seeded.Keep(1, 0.1, 16), 0);
  // The seed weighs as much as the prior: the sequence's own verifications soon outweigh it.
  seeded.Observe(0, 0);  // nothing verified: no change
  for (int i = 0; i < 4; ++i) {
    seeded.Keep(4, 0.1, 16);
    seeded.Observe(8, 0);
  }
  EXPECT_LT(seeded.acceptance(4), 0.2);
  // The pending class is the class of the draft last budgeted.
  SpecController c(8);
  c.Keep(3, 0.1, 8);
  EXPECT_EQ(c.pending_class(), 3);
  c.NextBudget(0.1);
  EXPECT_EQ(c.pending_class(), 0);
}

}  // namespace
}  // namespace gannet::engine
