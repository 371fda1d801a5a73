// PrefillPacer: chunk sizes from observed step times, the cautious start, clamping, that it
// follows a change of speed, and that a decode step's growth with the batch is not charged to the
// prompt tokens of a burst of requests.
#include "engine/prefill_pacer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

namespace gannet::engine {
namespace {

TEST(PrefillPacerTest, DisabledGivesTheWholeBudget) {
  PrefillPacer p(0.0, 4, 512);
  EXPECT_EQ(p.Limit(4), 512);
  p.Observe(0.05, 4, 0);
  p.Observe(1.0, 4, 100);
  EXPECT_EQ(p.Limit(4), 512);
}

TEST(PrefillPacerTest, DecodeOnlyFirstThenCautiousUntilBothTimesAreKnown) {
  PrefillPacer p(2.0, 4, 512);
  EXPECT_EQ(p.Limit(4), 0);   // no decode-only step seen: ask for one
  EXPECT_EQ(p.Limit(0), 16);  // (nothing decodes: no step to ask for)
  p.Observe(0.05, 4, 0);      // decode-only step known, per-token cost not yet
  EXPECT_EQ(p.Limit(4), 16);
  PrefillPacer small(2.0, 4, 10);
  small.Observe(0.05, 4, 0);
  EXPECT_EQ(small.Limit(4), 10);
}

TEST(PrefillPacerTest, SizesChunksSoAMixedStepTakesFactorTimesADecodeStep) {
  PrefillPacer p(2.0, 4, 512);
  p.Observe(0.060, 4, 0);          // decode-only: 60 ms
  p.Observe(0.060 + 0.5, 4, 100);  // 100 prompt tokens beside the decodes: 5 ms each
  // (2 - 1) * 60 ms / 5 ms = 12 tokens.
  EXPECT_EQ(p.Limit(4), 12);
  EXPECT_DOUBLE_EQ(p.DecodeStepSeconds(4), 0.060);
  EXPECT_DOUBLE_EQ(p.prompt_token_seconds(), 0.005);
  PrefillPacer three(3.0, 4, 512);
  three.Observe(0.060, 4, 0);
  three.Observe(0.560, 4, 100);
  EXPECT_EQ(three.Limit(4), 24);
}

TEST(PrefillPacerTest, PromptOnlyStepsChargeTheWholeStepToTheTokens) {
  PrefillPacer p(2.0, 1, 512);
  p.Observe(1.0, 0, 200);    // 5 ms per token, fixed cost included
  EXPECT_EQ(p.Limit(2), 0);  // no decode-only step yet: ask for one
  p.Observe(0.1, 2, 0);      // decode-only: 100 ms
  EXPECT_EQ(p.Limit(2), 20);
}

TEST(PrefillPacerTest, ClampsToMinAndMax) {
  PrefillPacer p(2.0, 8, 64);
  p.Observe(0.010, 1, 0);
  p.Observe(1.010, 1, 10);  // 100 ms per token: (10 ms / 100 ms) -> 0 tokens, clamped to 8
  EXPECT_EQ(p.Limit(1), 8);
  PrefillPacer q(2.0, 8, 64);
  q.Observe(1.0, 16, 0);
  q.Observe(1.001, 16, 100);  // 10 us per token: 100000 tokens, clamped to 64
  EXPECT_EQ(q.Limit(16), 64);
}

TEST(PrefillPacerTest, FollowsAChangeOfSpeedAndIgnoresBadSamples) {
  PrefillPacer p(2.0, 1, 4096);
  p.Observe(0.1, 4, 0);
  p.Observe(0.2, 4, 100);  // 1 ms per token: 100 tokens
  EXPECT_EQ(p.Limit(4), 100);
  for (int i = 0; i < 40; ++i) {
    p.Observe(0.1, 4, 0);
    p.Observe(0.1 + 0.4, 4, 100);  // the machine got 4x slower at prompts: 4 ms per token
  }
  EXPECT_NEAR(p.Limit(4), 25, 1);
  const int32_t before = p.Limit(4);
  p.Observe(-1.0, 4, 100);
  p.Observe(std::numeric_limits<double>::quiet_NaN(), 4, 0);
  p.Observe(std::numeric_limits<double>::infinity(), 4, 10);
  p.Observe(0.0, 0, 0);
  p.Observe(0.5, -1, 0);
  p.Observe(0.5, -1, 10);
  EXPECT_EQ(p.Limit(4), before);
}

TEST(PrefillPacerTest, FitsTheDecodeStepsGrowthWithTheBatch) {
  PrefillPacer p(2.0, 1, 4096);
  // Decode-only steps of 1 and 16 sequences: 8 ms and 18 ms, a line of 7.33 ms + 0.67 ms a
  // sequence.
  // Their batch sizes vary widely, so the line is theirs, within the prior's pull (towards no slope
  // here: no prompt token cost is known yet).
  for (int i = 0; i < 4; ++i) {
    p.Observe(0.008, 1, 0);
    p.Observe(0.018, 16, 0);
  }
  EXPECT_NEAR(p.DecodeStepSeconds(1), 0.008, 0.0006);
  EXPECT_NEAR(p.DecodeStepSeconds(16), 0.018, 0.0006);
  EXPECT_NEAR(p.DecodeStepSeconds(4), 0.010, 0.0006);
  // 8 decodes and 20 prompt tokens took 10 ms more than a decode step of 8: 0.5 ms a token.
  const double decode8 = p.DecodeStepSeconds(8);
  p.Observe(decode8 + 0.010, 8, 20);
  EXPECT_NEAR(p.prompt_token_seconds(), 0.0005, 0.00001);
  EXPECT_NEAR(p.Limit(1), 16, 1);   // 8 ms / 0.5 ms
  EXPECT_NEAR(p.Limit(16), 36, 1);  // 18 ms / 0.5 ms
  // Prompt-only steps are charged beyond the fixed cost (the line at no decodes).
  PrefillPacer q = p;
  q.Observe(q.DecodeStepSeconds(0) + 0.100, 0, 200);
  EXPECT_NEAR(q.prompt_token_seconds(), 0.0005, 0.00001);
}

TEST(PrefillPacerTest, StepsOfNeighbouringSizesLeaveTheSlopeToThePrior) {
  PrefillPacer p(2.0, 1, 4096);
  p.Observe(0.010, 1, 0);
  p.Observe(0.010 + 0.050, 1, 100);  // 0.5 ms a prompt token
  // Noisy decode-only steps of 15 and 16 sequences: their own slope (6 ms a sequence) would put a
  // decode step of one sequence below zero.
  for (int i = 0; i < 8; ++i) {
    p.Observe(0.018, 15, 0);
    p.Observe(0.024, 16, 0);
  }
  const double at16 = p.DecodeStepSeconds(16);
  EXPECT_GT(p.DecodeStepSeconds(1), 0.005);
  EXPECT_LT(at16 - p.DecodeStepSeconds(15), 0.003);
  EXPECT_GT(p.Limit(1), 10);
}

// A burst of short prompts arrives while one sequence decodes; each joins the decoding batch once
// its prompt is in. The machine: a step costs 7.4 ms, 0.6 ms per decode and 0.5 ms per prompt
// token. A pacer that measured only the lone sequence's decode step charged the batch's growth to
// the prompt tokens (3.4 ms per token by the end) and took the burst in 15 steps; fitted by batch
// size, the mixed steps stay within about twice a decode step of their batch and the burst is in
// within 9.
TEST(PrefillPacerTest, TakesABurstOfShortPromptsAtItsPace) {
  auto step = [](int32_t decodes, int32_t prompt_tokens) {
    return 0.0074 + 0.0006 * decodes + 0.0005 * prompt_tokens;
  };
  PrefillPacer p(2.0, 4, 512);
  p.Observe(step(0, 7), 0, 7);  // the first request's prompt, alone
  for (int i = 0; i < 8; ++i) p.Observe(step(1, 0), 1, 0);
  constexpr int32_t kPrompts = 15, kPromptTokens = 7;
  int32_t decodes = 1, admitted_tokens = 0, steps = 0;
  while (admitted_tokens < kPrompts * kPromptTokens) {
    ASSERT_LT(++steps, 100);
    const int32_t limit = p.Limit(decodes);
    const int32_t tokens = std::min(limit, kPrompts * kPromptTokens - admitted_tokens);
    const double seconds = step(decodes, tokens);
    // Twice the decode step of this batch, within what the cautious start and the model's slope
    // (a decode row taken to cost a prompt token until decode-only steps of other sizes are
    // seen) leave.
    EXPECT_LE(seconds, 2.0 * step(decodes, 0) * 1.1) << "step " << steps;
    p.Observe(seconds, decodes, tokens);
    // The prompts whose last token was in this step decode from the next one.
    decodes = 1 + (admitted_tokens + tokens) / kPromptTokens;
    admitted_tokens += tokens;
  }
  EXPECT_LE(steps, 9);
  EXPECT_NEAR(p.prompt_token_seconds(), 0.00055, 0.00006);
}

// Requests arrive as fast as they finish (bench/serving.py's 16 clients), so prompt tokens wait at
// every step and no step decodes alone unless the pacer asks for one. The machine: 8 ms a step,
// 0.7 ms per decode, 0.5 ms per prompt token. Without the pacer's own decode-only steps every
// step carried the cautious 16 tokens, and the prompt token's cost, charged whole steps, ended at
// 3.4 times its value; with them the cost is learnt, the mixed steps take about twice a decode
// step of their batch, and a decode-only step comes back every kRefreshSteps steps.
TEST(PrefillPacerTest, AsksForDecodeOnlyStepsUnderASteadyStreamOfPrompts) {
  auto step = [](int32_t decodes, int32_t prompt_tokens) {
    return 0.008 + 0.0007 * decodes + 0.0005 * prompt_tokens;
  };
  PrefillPacer p(2.0, 4, 512);
  p.Observe(step(0, 150), 0, 150);  // the first prompts, nothing decoding yet
  int32_t decodes = 1, decode_only = 0, since = 0;
  for (int i = 0; i < 200; ++i) {
    const int32_t limit = p.Limit(decodes);
    ASSERT_GE(limit, 0);
    if (limit == 0) {
      ++decode_only;
      if (i > 0) {
        EXPECT_EQ(since, PrefillPacer::kRefreshSteps) << "step " << i;
      }
      since = 0;
    } else {
      ++since;
      EXPECT_GE(limit, 4);
      if (i > 40) {
        EXPECT_LE(step(decodes, limit), 2.0 * step(decodes, 0) * 1.15) << "step " << i;
      }
    }
    p.Observe(step(decodes, limit), decodes, limit);
    decodes = std::min(16, decodes + (i % 3 == 0 ? 1 : 0));
  }
  EXPECT_EQ(decode_only, 1 + 199 / (PrefillPacer::kRefreshSteps + 1));
  EXPECT_NEAR(p.prompt_token_seconds(), 0.0005, 0.0001);
  // At 16 decodes: (2 - 1) * 19.2 ms / 0.5 ms, within the slope's error.
  EXPECT_NEAR(p.Limit(16), 38, 6);
}

}  // namespace
}  // namespace gannet::engine
