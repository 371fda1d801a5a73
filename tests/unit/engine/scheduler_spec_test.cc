// The scheduler's side of speculative decoding: drafts handed over with a step's samples are
// scheduled as tree entries within the budget and the request's remaining tokens, accepted tokens
// are appended, the slots of rejected tokens given back, and malformed results refused.
#include <gtest/gtest.h>

#include <vector>

#include "engine/scheduler.h"

namespace gannet::engine {
namespace {

Scheduler Make(int32_t budget = 64) {
  Result<Scheduler> s = Scheduler::Create(
      {.max_num_batched_tokens = budget, .max_num_seqs = 4, .num_blocks = 64, .block_size = 4});
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

// Runs the prompt step of request 1 and hands back `first` with `draft`.
SeqId Prefill(Scheduler& s, const std::vector<int32_t>& prompt, int32_t max_tokens, int32_t first,
              Draft draft) {
  EXPECT_TRUE(s.AddRequest({.id = 1, .prompt = prompt, .max_tokens = max_tokens}).ok());
  const SchedulerOutput out = s.Schedule();
  EXPECT_EQ(out.seqs.size(), 1u);
  const SeqId id = out.seqs[0].seq_id;
  EXPECT_FALSE(out.seqs[0].speculative());
  EXPECT_TRUE(
      s.Update({.step = out.step,
                .seqs = {{.seq_id = id, .samples = {{.token = first}}, .draft = std::move(draft)}}})
          .ok());
  return id;
}

TEST(SchedulerSpecTest, ADraftIsVerifiedAndRejectedSlotsAreGivenBack) {
  Scheduler s = Make();
  // Draft: 11 -> 12 -> 13, and 20 beside 11.
  const SeqId id =
      Prefill(s, {1, 2, 3}, 20, 10, {.tokens = {11, 12, 13, 20}, .parents = {-1, 0, 1, -1}});
  const SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  const ScheduledSeq& e = out.seqs[0];
  EXPECT_TRUE(e.speculative());
  EXPECT_EQ(e.start, 3);
  EXPECT_EQ(e.tokens, (std::vector<int32_t>{10, 11, 12, 13, 20}));
  EXPECT_EQ(e.tree_parents, (std::vector<int32_t>{-1, 0, 1, 2, 0}));
  EXPECT_EQ(out.num_tokens, 5);
  EXPECT_EQ(e.block_table.size(), 2u);  // 8 slots
  EXPECT_TRUE(s.CheckInvariants().ok());
  // 11 and 12 accepted, then 99 sampled where the draft said 13.
  ASSERT_TRUE(
      s.Update({.step = out.step,
                .seqs = {{.seq_id = id, .samples = {{.token = 11}, {.token = 12}, {.token = 99}}}}})
          .ok());
  EXPECT_TRUE(s.CheckInvariants().ok());
  ASSERT_EQ(s.Sequences(1).size(), 1u);
  EXPECT_EQ(s.Sequences(1)[0].output, (std::vector<int32_t>{10, 11, 12, 99}));
  EXPECT_EQ(s.Sequences(1)[0].num_computed, 6);
  EXPECT_EQ(s.kv().NumSlots(id), 6);
  EXPECT_EQ(s.stats().num_draft_tokens, 4);
  EXPECT_EQ(s.stats().num_accepted_tokens, 2);
  EXPECT_EQ(s.stats().num_spec_steps, 1);
  // No draft this time: an ordinary decode of 99.
  const SchedulerOutput next = s.Schedule();
  ASSERT_EQ(next.seqs.size(), 1u);
  EXPECT_FALSE(next.seqs[0].speculative());
  EXPECT_EQ(next.seqs[0].tokens, (std::vector<int32_t>{99}));
  EXPECT_EQ(next.seqs[0].start, 6);
  ASSERT_TRUE(s.Update({.step = next.step,
                        .seqs = {{.seq_id = id, .samples = {{.token = 5, .stop = true}}}}})
                  .ok());
  EXPECT_FALSE(s.has_unfinished());
  EXPECT_EQ(s.kv().pool().num_used(), 0);
}

TEST(SchedulerSpecTest, ADraftIsCutToTheBudgetAndTheRequestsRemainingTokens) {
  {
    Scheduler s = Make(/*budget=*/3);
    const SeqId id =
        Prefill(s, {1, 2}, 20, 10, {.tokens = {11, 12, 13, 14}, .parents = {-1, 0, 1, 2}});
    const SchedulerOutput out = s.Schedule();
    ASSERT_EQ(out.seqs.size(), 1u);
    EXPECT_EQ(out.seqs[0].tokens, (std::vector<int32_t>{10, 11, 12}));
    ASSERT_TRUE(
        s.Update({.step = out.step, .seqs = {{.seq_id = id, .samples = {{.token = 7}}}}}).ok());
    EXPECT_TRUE(s.CheckInvariants().ok());
    EXPECT_EQ(s.Sequences(1)[0].num_computed, 3);
  }
  {
    // max_tokens 3, one generated: at most 2 more tokens, so at most 1 draft token.
    Scheduler s = Make();
    const SeqId id = Prefill(s, {1, 2}, 3, 10, {.tokens = {11, 12, 13}, .parents = {-1, 0, 1}});
    const SchedulerOutput out = s.Schedule();
    EXPECT_EQ(out.seqs[0].tokens, (std::vector<int32_t>{10, 11}));
    // Both accepted tokens end the request at max_tokens.
    ASSERT_TRUE(s.Update({.step = out.step,
                          .seqs = {{.seq_id = id, .samples = {{.token = 11}, {.token = 4}}}}})
                    .ok());
    std::vector<FinishedRequest> f = s.TakeFinished();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].samples[0].tokens, (std::vector<int32_t>{10, 11, 4}));
    EXPECT_EQ(f[0].samples[0].reason, FinishReason::kLength);
    EXPECT_EQ(s.kv().pool().num_used(), 0);
  }
}

TEST(SchedulerSpecTest, MalformedSpeculativeResultsAreRefused) {
  Scheduler s = Make();
  EXPECT_FALSE(s.AddRequest({.id = 9, .prompt = {1}, .max_tokens = 0}).ok());
  ASSERT_TRUE(s.AddRequest({.id = 1, .prompt = {1, 2}, .max_tokens = 20}).ok());
  SchedulerOutput out = s.Schedule();
  const SeqId id = out.seqs[0].seq_id;
  // Malformed drafts: a parent not before its child, sizes that differ, negative tokens, too many.
  for (const Draft& bad :
       {Draft{.tokens = {1, 2}, .parents = {-1, 1}}, Draft{.tokens = {1, 2}, .parents = {-1}},
        Draft{.tokens = {-3}, .parents = {-1}},
        Draft{.tokens = std::vector<int32_t>(kMaxDraftTokens + 1, 1),
        .parents = std::vector<int32_t>(kMaxDraftTokens + 1, -1)}}) {
    EXPECT_FALSE(s.Update({.step = out.step,
                           .seqs = {{.seq_id = id, .samples = {{.token = 5}}, .draft = bad}}})
                     .ok());
  }
  ASSERT_TRUE(s.Update({.step = out.step,
                        .seqs = {{.seq_id = id,
                                  .samples = {{.token = 5}},
                                  .draft = {.tokens = {6, 7}, .parents = {-1, 0}}}}})
                  .ok());
  out = s.Schedule();
  ASSERT_TRUE(out.seqs[0].speculative());
  EXPECT_FALSE(s.Update({.step = out.step, .seqs = {{.seq_id = id, .samples = {}}}}).ok());
  EXPECT_FALSE(
      s.Update({.step = out.step, .seqs = {{.seq_id = id, .samples = {{6}, {7}, {8}, {9}}}}}).ok());
  EXPECT_FALSE(
      s.Update({.step = out.step,
                .seqs = {{.seq_id = id, .samples = {{.token = 6, .stop = true}, {.token = 7}}}}})
          .ok());
  EXPECT_TRUE(s.CheckInvariants().ok());
  // All of it accepted plus one: 3 tokens, K/V for the newest and both drafts.
  ASSERT_TRUE(
      s.Update({.step = out.step, .seqs = {{.seq_id = id, .samples = {{6}, {7}, {8}}}}}).ok());
  EXPECT_EQ(s.Sequences(1)[0].num_computed, 5);
  EXPECT_EQ(s.Sequences(1)[0].output, (std::vector<int32_t>{5, 6, 7, 8}));
  EXPECT_TRUE(s.CheckInvariants().ok());
  ASSERT_TRUE(s.Cancel(1).ok());
  EXPECT_EQ(s.kv().pool().num_used(), 0);
}

TEST(SchedulerSpecTest, ParallelSamplesForkBeforeAnyDraft) {
  Scheduler s = Make();
  ASSERT_TRUE(s.AddRequest({.id = 1, .prompt = {1, 2, 3}, .max_tokens = 8, .n = 2}).ok());
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.seqs[0].num_samples, 2);
  // A draft at the fork point is ignored: the children's next tokens differ.
  ASSERT_TRUE(s.Update({.step = out.step,
                        .seqs = {{.seq_id = out.seqs[0].seq_id,
                                  .samples = {{.token = 4}, {.token = 5}},
                                  .draft = {.tokens = {6}, .parents = {-1}}}}})
                  .ok());
  out = s.Schedule();
  ASSERT_EQ(out.seqs.size(), 2u);
  EXPECT_FALSE(out.seqs[0].speculative());
  EXPECT_FALSE(out.seqs[1].speculative());
  ASSERT_TRUE(s.Cancel(1).ok());
  EXPECT_EQ(s.kv().pool().num_used(), 0);
}

}  // namespace
}  // namespace gannet::engine
