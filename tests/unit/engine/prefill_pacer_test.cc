// PrefillPacer: chunk sizes from observed step times, the cautious start, clamping, and that it
// follows a change of speed.
#include "engine/prefill_pacer.h"

#include <gtest/gtest.h>

#include <limits>

namespace gannet::engine {
namespace {

TEST(PrefillPacerTest, DisabledGivesTheWholeBudget) {
  PrefillPacer p(0.0, 4, 512);
  EXPECT_EQ(p.Limit(), 512);
  p.Observe(0.05, 4, 0);
  p.Observe(1.0, 4, 100);
  EXPECT_EQ(p.Limit(), 512);
}

TEST(PrefillPacerTest, CautiousUntilBothTimesAreKnown) {
  PrefillPacer p(2.0, 4, 512);
  EXPECT_EQ(p.Limit(), 16);
  p.Observe(0.05, 4, 0);  // decode-only step known, per-token cost not yet
  EXPECT_EQ(p.Limit(), 16);
  PrefillPacer small(2.0, 4, 10);
  EXPECT_EQ(small.Limit(), 10);
}

TEST(PrefillPacerTest, SizesChunksSoAMixedStepTakesFactorTimesADecodeStep) {
  PrefillPacer p(2.0, 4, 512);
  p.Observe(0.060, 4, 0);          // decode-only: 60 ms
  p.Observe(0.060 + 0.5, 4, 100);  // 100 prompt tokens beside the decodes: 5 ms each
  // (2 - 1) * 60 ms / 5 ms = 12 tokens.
  EXPECT_EQ(p.Limit(), 12);
  EXPECT_DOUBLE_EQ(p.decode_step_seconds(), 0.060);
  EXPECT_DOUBLE_EQ(p.prompt_token_seconds(), 0.005);
  PrefillPacer three(3.0, 4, 512);
  three.Observe(0.060, 4, 0);
  three.Observe(0.560, 4, 100);
  EXPECT_EQ(three.Limit(), 24);
}

TEST(PrefillPacerTest, PromptOnlyStepsChargeTheWholeStepToTheTokens) {
  PrefillPacer p(2.0, 1, 512);
  p.Observe(1.0, 0, 200);  // 5 ms per token, fixed cost included
  p.Observe(0.1, 2, 0);    // decode-only: 100 ms
  EXPECT_EQ(p.Limit(), 20);
}

TEST(PrefillPacerTest, ClampsToMinAndMax) {
  PrefillPacer p(2.0, 8, 64);
  p.Observe(0.010, 1, 0);
  p.Observe(1.010, 1, 10);  // 100 ms per token: (10 ms / 100 ms) -> 0 tokens, clamped to 8
  EXPECT_EQ(p.Limit(), 8);
  PrefillPacer q(2.0, 8, 64);
  q.Observe(1.0, 16, 0);
  q.Observe(1.001, 16, 100);  // 10 us per token: 100000 tokens, clamped to 64
  EXPECT_EQ(q.Limit(), 64);
}

TEST(PrefillPacerTest, FollowsAChangeOfSpeedAndIgnoresBadSamples) {
  PrefillPacer p(2.0, 1, 4096);
  p.Observe(0.1, 4, 0);
  p.Observe(0.2, 4, 100);  // 1 ms per token: 100 tokens
  EXPECT_EQ(p.Limit(), 100);
  for (int i = 0; i < 40; ++i) {
    p.Observe(0.1, 4, 0);
    p.Observe(0.1 + 0.4, 4, 100);  // the machine got 4x slower at prompts: 4 ms per token
  }
  EXPECT_NEAR(p.Limit(), 25, 1);
  const int32_t before = p.Limit();
  p.Observe(-1.0, 4, 100);
  p.Observe(std::numeric_limits<double>::quiet_NaN(), 4, 0);
  p.Observe(std::numeric_limits<double>::infinity(), 4, 10);
  p.Observe(0.0, 0, 0);
  EXPECT_EQ(p.Limit(), before);
}

}  // namespace
}  // namespace gannet::engine
