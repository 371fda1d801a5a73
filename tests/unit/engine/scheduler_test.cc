// Scheduler: input validation, budgets, chunked prefill interleaved with decodes, FCFS, preemption
// order and resumption, cancellation in every state, n > 1 forks, stop conditions, Update checks.
// Every step runs through FakeForward, which verifies the K/V each sequence reads.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <numeric>
#include <vector>

#include "scheduler_test_util.h"

namespace gannet::engine {
namespace {

using testing::FakeForward;
using testing::SampleFn;

std::vector<int32_t> Range(int32_t from, int32_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

// Distinct, position-dependent tokens; never an EOS unless a test says so.
SampledToken DefaultSample(const ScheduledSeq& e, int32_t k) {
  return {.token = 1000 + 10 * (e.start + static_cast<int32_t>(e.tokens.size())) + k};
}

struct Harness {
  explicit Harness(const SchedulerOptions& o)
      : sched(std::move(Scheduler::Create(o)).value()), fwd(o) {}

  void Add(RequestId id, const std::vector<int32_t>& prompt, int32_t max_tokens, int32_t n = 1) {
    fwd.AddPrompt(id, prompt);
    const Status s =
        sched.AddRequest({.id = id, .prompt = prompt, .max_tokens = max_tokens, .n = n});
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Schedule + fake forward + Update, checking invariants on the way.
  SchedulerOutput Step(const SampleFn& sample = DefaultSample,
                       int32_t prefill_limit = std::numeric_limits<int32_t>::max()) {
    return Apply(sched.Schedule(prefill_limit), sample);
  }
  // The same with the prefill limit a function of the step's decodes (as the serving engine asks).
  SchedulerOutput StepWith(const std::function<int32_t(int32_t)>& prefill_limit) {
    return Apply(sched.Schedule(prefill_limit), DefaultSample);
  }

  SchedulerOutput Apply(SchedulerOutput out, const SampleFn& sample) {
    if (!out.empty()) {
      std::string error;
      const StepResult r = fwd.Run(out, sample, &error);
      EXPECT_EQ(error, "");
      const Status u = sched.Update(r);
      EXPECT_TRUE(u.ok()) << u.ToString();
    }
    const Status inv = sched.CheckInvariants();
    EXPECT_TRUE(inv.ok()) << inv.ToString();
    for (FinishedRequest& f : sched.TakeFinished()) finished[f.id] = std::move(f);
    return out;
  }

  void RunToEnd(int max_steps = 10000) {
    for (int i = 0; i < max_steps && sched.has_unfinished(); ++i) Step();
    EXPECT_FALSE(sched.has_unfinished());
    EXPECT_EQ(sched.kv().pool().num_used(), 0);
  }

  SeqId OnlySeq(RequestId id) const {
    const std::vector<SeqSnapshot> s = sched.Sequences(id);
    EXPECT_EQ(s.size(), 1u);
    return s.empty() ? -1 : s[0].id;
  }

  Scheduler sched;
  FakeForward fwd;
  std::unordered_map<RequestId, FinishedRequest> finished;
};

const ScheduledSeq* Find(const SchedulerOutput& out, SeqId id) {
  for (const ScheduledSeq& e : out.seqs) {
    if (e.seq_id == id) return &e;
  }
  return nullptr;
}

TEST(SchedulerTest, RejectsBadOptionsAndRequests) {
  EXPECT_FALSE(Scheduler::Create({.max_num_batched_tokens = 0, .num_blocks = 8}).ok());
  EXPECT_FALSE(Scheduler::Create({.max_num_seqs = 0, .num_blocks = 8}).ok());
  EXPECT_FALSE(Scheduler::Create({.num_blocks = 0}).ok());
  EXPECT_FALSE(Scheduler::Create({.num_blocks = 8, .block_size = -1}).ok());

  Harness h({.max_num_batched_tokens = 32, .max_num_seqs = 4, .num_blocks = 8, .block_size = 4});
  Scheduler& s = h.sched;
  EXPECT_EQ(s.AddRequest({.id = 1, .prompt = {}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.AddRequest({.id = 1, .prompt = {1}, .max_tokens = 0}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(s.AddRequest({.id = 1, .prompt = {1}, .n = 0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.AddRequest({.id = 1, .prompt = {1}, .n = 5}).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(s.has_unfinished());
  ASSERT_TRUE(s.AddRequest({.id = 1, .prompt = {1}}).ok());
  EXPECT_EQ(s.AddRequest({.id = 1, .prompt = {2}}).code(), StatusCode::kInvalidArgument);

  // 30 + 4 - 1 = 33 slots: 9 blocks of 4 > 8. Finished at once, never scheduled.
  ASSERT_TRUE(s.AddRequest({.id = 2, .prompt = Range(0, 30), .max_tokens = 4}).ok());
  std::vector<FinishedRequest> f = s.TakeFinished();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].id, 2u);
  ASSERT_EQ(f[0].samples.size(), 1u);
  EXPECT_EQ(f[0].samples[0].reason, FinishReason::kError);
  EXPECT_EQ(s.Cancel(2).code(), StatusCode::kNotFound);
}

TEST(SchedulerTest, ARequestThatFillsThePoolExactlyRuns) {
  Harness h({.max_num_batched_tokens = 16, .max_num_seqs = 4, .num_blocks = 8, .block_size = 4});
  h.Add(1, Range(0, 30), 3);  // 32 slots = the whole pool
  h.Add(2, Range(100, 5), 4);
  h.RunToEnd();
  ASSERT_EQ(h.finished.size(), 2u);
  EXPECT_EQ(h.finished[1].samples[0].reason, FinishReason::kLength);
  EXPECT_EQ(h.finished[1].samples[0].tokens.size(), 3u);
  EXPECT_EQ(h.finished[2].samples[0].tokens.size(), 4u);
}

TEST(SchedulerTest, BudgetsAreRespected) {
  const SchedulerOptions o{
      .max_num_batched_tokens = 16, .max_num_seqs = 3, .num_blocks = 128, .block_size = 4};
  Harness h(o);
  for (RequestId id = 1; id <= 6; ++id) h.Add(id, Range(10 * id, 10), 5);
  SchedulerOutput first = h.Step();
  EXPECT_EQ(first.num_tokens, 16);  // 10 of the first prompt, a 6-token chunk of the second
  ASSERT_EQ(first.seqs.size(), 2u);
  EXPECT_EQ(first.seqs[1].tokens.size(), 6u);
  EXPECT_FALSE(first.seqs[1].needs_logits);
  int steps = 1;
  while (h.sched.has_unfinished()) {
    const SchedulerOutput out = h.Step();
    EXPECT_LE(out.num_tokens, 16);  // also checked by FakeForward
    EXPECT_LE(out.seqs.size(), 3u);
    EXPECT_LE(h.sched.stats().num_running, 3);
    ASSERT_LT(++steps, 200);
  }
  for (RequestId id = 1; id <= 6; ++id) EXPECT_EQ(h.finished[id].samples[0].tokens.size(), 5u);
}

TEST(SchedulerTest, ChunkedPrefillInterleavesWithDecodes) {
  Harness h({.max_num_batched_tokens = 32, .max_num_seqs = 8, .num_blocks = 256, .block_size = 4});
  h.Add(1, Range(0, 5), 40);
  h.Step();
  const SeqId a = h.OnlySeq(1);
  h.Add(2, Range(500, 100), 2);
  std::vector<size_t> chunks;
  SeqId b = -1;
  for (int i = 0; i < 4; ++i) {
    const SchedulerOutput out = h.Step();
    const ScheduledSeq* ea = Find(out, a);
    ASSERT_NE(ea, nullptr) << "decode starved in step " << out.step;
    EXPECT_EQ(ea->tokens.size(), 1u);
    EXPECT_TRUE(ea->needs_logits);
    ASSERT_EQ(out.seqs.size(), 2u);
    b = out.seqs[1].seq_id;
    chunks.push_back(out.seqs[1].tokens.size());
    EXPECT_EQ(out.seqs[1].needs_logits, i == 3);
  }
  EXPECT_EQ(chunks, (std::vector<size_t>{31, 31, 31, 7}));
  const SchedulerOutput next = h.Step();
  ASSERT_NE(Find(next, b), nullptr);
  EXPECT_EQ(Find(next, b)->tokens.size(), 1u);  // now decoding beside a
  h.RunToEnd();
  EXPECT_EQ(h.finished[1].samples[0].tokens.size(), 40u);
  EXPECT_EQ(h.finished[2].samples[0].tokens.size(), 2u);
}

// The prefill limit caps prompt tokens only in steps that also decode: running chunks and newly
// admitted prompts share it; a step without decodes still gets the whole budget.
TEST(SchedulerTest, PrefillLimitAppliesOnlyBesideDecodes) {
  Harness h({.max_num_batched_tokens = 32, .max_num_seqs = 8, .num_blocks = 256, .block_size = 4});
  h.Add(1, Range(0, 40), 3);
  SchedulerOutput out = h.Step(DefaultSample, 5);  // nothing decodes yet: the whole budget
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].tokens.size(), 32u);
  EXPECT_EQ(out.num_tokens, 32);
  out = h.Step(DefaultSample, 5);  // the rest of the prompt, still no decodes
  EXPECT_EQ(out.num_tokens, 8);
  const SeqId a = h.OnlySeq(1);
  h.Add(2, Range(100, 20), 2);
  h.Add(3, Range(200, 20), 2);
  out = h.Step(DefaultSample, 5);  // a decodes; 2 gets a 5-token chunk, 3 must wait
  ASSERT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(out.seqs[0].seq_id, a);
  EXPECT_EQ(out.seqs[1].request_id, 2u);
  EXPECT_EQ(out.seqs[1].tokens.size(), 5u);
  EXPECT_EQ(out.num_tokens, 6);
  out = h.Step(DefaultSample, 7);  // a's last decode; 2's running chunk takes the whole limit
  ASSERT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(out.seqs[1].tokens.size(), 7u);
  EXPECT_EQ(out.num_tokens, 8);
  out = h.Step(DefaultSample, 7);  // a finished: no decodes, so 2 and 3 fill the budget
  EXPECT_EQ(out.num_tokens, 8 + 20);
  h.RunToEnd();
  EXPECT_EQ(h.finished[1].samples[0].tokens.size(), 3u);
  EXPECT_EQ(h.finished[3].samples[0].tokens.size(), 2u);
}

TEST(SchedulerTest, PrefillLimitIsAskedForTheStepsDecodes) {
  Harness h({.max_num_batched_tokens = 64, .max_num_seqs = 8, .num_blocks = 256, .block_size = 4});
  std::vector<int32_t> asked;
  const auto limit = [&asked](int32_t decodes) {
    asked.push_back(decodes);
    return 3 * decodes;
  };
  h.Add(1, Range(0, 8), 4);
  h.Add(2, Range(100, 8), 4);
  SchedulerOutput out = h.StepWith(limit);  // no decodes: not asked, the whole budget
  EXPECT_TRUE(asked.empty());
  EXPECT_EQ(out.num_tokens, 16);
  h.Add(3, Range(200, 30), 2);
  out = h.StepWith(limit);  // 1 and 2 decode: asked for 2, 3 gets a 6-token chunk
  EXPECT_EQ(asked, std::vector<int32_t>({2}));
  ASSERT_EQ(out.seqs.size(), 3u);
  EXPECT_EQ(out.seqs[2].request_id, 3u);
  EXPECT_EQ(out.seqs[2].tokens.size(), 6u);
  h.RunToEnd();
  EXPECT_EQ(h.finished[3].samples[0].tokens.size(), 2u);
}

TEST(SchedulerTest, APrefillLimitOfZeroMakesADecodeOnlyStep) {
  Harness h({.max_num_batched_tokens = 64, .max_num_seqs = 8, .num_blocks = 256, .block_size = 4});
  h.Add(1, Range(0, 8), 4);
  h.Add(2, Range(100, 20), 4);
  SchedulerOutput out = h.StepWith([](int32_t) { return 0; });  // no decodes: the whole budget
  EXPECT_EQ(out.num_tokens, 28);
  h.Add(3, Range(200, 12), 2);
  out = h.StepWith([](int32_t) { return 0; });  // 1 and 2 decode; 3 waits
  EXPECT_EQ(out.num_tokens, 2);
  ASSERT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(h.sched.Sequences(3)[0].state, SeqState::kWaiting);
  out = h.StepWith([](int32_t) { return 5; });  // then 3 gets its chunk
  ASSERT_EQ(out.seqs.size(), 3u);
  EXPECT_EQ(out.seqs[2].tokens.size(), 5u);
  h.RunToEnd();
  EXPECT_EQ(h.finished[3].samples[0].tokens.size(), 2u);
}

TEST(SchedulerTest, WaitingRequestsAreServedFirstComeFirstServed) {
  // Pool of 8 blocks: A takes 5; B (4 blocks) does not fit; C (1 block) would, but must not
  // overtake.
  Harness h({.max_num_batched_tokens = 64, .max_num_seqs = 8, .num_blocks = 8, .block_size = 4});
  h.Add(1, Range(0, 20), 4);
  h.Add(2, Range(100, 14), 2);
  h.Add(3, Range(200, 2), 2);
  std::vector<RequestId> admitted;
  std::unordered_set<RequestId> seen;
  while (h.sched.has_unfinished()) {
    const SchedulerOutput out = h.Step();
    for (const ScheduledSeq& e : out.seqs) {
      if (seen.insert(e.request_id).second) admitted.push_back(e.request_id);
    }
    ASSERT_LT(out.step, 100u);
  }
  EXPECT_EQ(admitted, (std::vector<RequestId>{1, 2, 3}));
  EXPECT_EQ(h.sched.stats().num_preemptions, 0);
}

TEST(SchedulerTest, PreemptsNewestFirstAndResumesByRecompute) {
  // Four 1-block prompts in a 5-block pool: at position 4 every sequence needs a second block.
  Harness h({.max_num_batched_tokens = 64, .max_num_seqs = 8, .num_blocks = 5, .block_size = 4});
  for (RequestId id = 1; id <= 4; ++id) h.Add(id, Range(10 * id, 4), 8);
  h.Step();
  std::vector<SeqId> seq(5);
  for (RequestId id = 1; id <= 4; ++id) seq[id] = h.OnlySeq(id);
  const SchedulerOutput out = h.Step();
  // A takes the free block; B's allocation fails: D (newest) goes, B proceeds; C's fails: C itself.
  EXPECT_EQ(out.preempted, (std::vector<SeqId>{seq[4], seq[3]}));
  EXPECT_NE(Find(out, seq[1]), nullptr);
  EXPECT_NE(Find(out, seq[2]), nullptr);
  EXPECT_EQ(h.sched.Sequences(3)[0].state, SeqState::kPreempted);
  EXPECT_EQ(h.sched.Sequences(4)[0].state, SeqState::kPreempted);
  EXPECT_EQ(h.sched.Sequences(3)[0].output.size(), 1u);  // keeps what it generated
  EXPECT_EQ(h.sched.stats().num_preemptions, 2);

  std::unordered_map<SeqId, uint64_t> resumed_at;
  while (h.sched.has_unfinished()) {
    const SchedulerOutput o = h.Step();
    for (const SeqId s : {seq[3], seq[4]}) {
      const ScheduledSeq* e = Find(o, s);
      if (e != nullptr && resumed_at.count(s) == 0) {
        resumed_at[s] = o.step;
        // Recomputed with its generated token appended to the prompt (FakeForward checks ids).
        EXPECT_EQ(e->start + e->tokens.size(), 5u);
      }
    }
    ASSERT_LT(o.step, 200u);
  }
  ASSERT_EQ(resumed_at.size(), 2u);
  EXPECT_LE(resumed_at[seq[3]], resumed_at[seq[4]]);  // C was ahead of D in the queue
  for (RequestId id = 1; id <= 4; ++id) {
    EXPECT_EQ(h.finished[id].samples[0].tokens.size(), 8u);
    EXPECT_EQ(h.finished[id].samples[0].reason, FinishReason::kLength);
  }
  EXPECT_EQ(h.sched.kv().pool().num_used(), 0);
}

// Cancels request `victim` once `reached` holds for its sequence, then checks that it is gone,
// holds nothing, and the others still finish.
void CancelWhen(Harness& h, RequestId victim,
                const std::function<bool(const SeqSnapshot&)>& reached, bool in_flight) {
  for (int i = 0; i < 200; ++i) {
    const std::vector<SeqSnapshot> s = h.sched.Sequences(victim);
    ASSERT_FALSE(s.empty()) << "request finished before reaching the state";
    if (reached(s[0])) break;
    h.Step();
  }
  ASSERT_TRUE(reached(h.sched.Sequences(victim)[0]));
  if (in_flight) {
    const SchedulerOutput out = h.sched.Schedule();
    ASSERT_FALSE(out.empty());
    std::string error;
    const StepResult r = h.fwd.Run(out, DefaultSample, &error);
    ASSERT_EQ(error, "");
    ASSERT_TRUE(h.sched.Cancel(victim).ok());
    ASSERT_TRUE(h.sched.Update(r).ok());  // the cancelled sequence's result is ignored
  } else {
    ASSERT_TRUE(h.sched.Cancel(victim).ok());
  }
  EXPECT_TRUE(h.sched.Sequences(victim).empty());
  EXPECT_EQ(h.sched.Cancel(victim).code(), StatusCode::kNotFound);
  const Status inv = h.sched.CheckInvariants();
  EXPECT_TRUE(inv.ok()) << inv.ToString();
  bool reported = false;
  for (FinishedRequest& f : h.sched.TakeFinished()) {
    if (f.id == victim) {
      reported = true;
      for (const SampleOutput& o : f.samples) EXPECT_EQ(o.reason, FinishReason::kCancelled);
    }
    h.finished[f.id] = std::move(f);
  }
  EXPECT_TRUE(reported);
  h.RunToEnd();  // ends with every block released
}

TEST(SchedulerTest, CancelInEveryStateFreesEverything) {
  const SchedulerOptions o{
      .max_num_batched_tokens = 16, .max_num_seqs = 8, .num_blocks = 8, .block_size = 4};
  auto is = [](SeqState st) { return [st](const SeqSnapshot& s) { return s.state == st; }; };
  for (const bool in_flight : {false, true}) {
    SCOPED_TRACE(in_flight ? "between Schedule and Update" : "between steps");
    {  // waiting, never run
      Harness h(o);
      h.Add(1, Range(0, 20), 4);
      h.Add(2, Range(100, 14), 2);
      CancelWhen(h, 2, is(SeqState::kWaiting), in_flight);
    }
    {  // running, in the middle of a chunked prefill
      Harness h(o);
      h.Add(1, Range(0, 28), 2);
      CancelWhen(
          h, 1,
          [](const SeqSnapshot& s) {
            return s.state == SeqState::kRunning && s.num_computed == 16;
          },
          in_flight);
    }
    {  // running, decoding
      Harness h(o);
      h.Add(1, Range(0, 6), 10);
      h.Add(2, Range(50, 6), 10);
      CancelWhen(
          h, 1, [](const SeqSnapshot& s) { return s.output.size() == 3; }, in_flight);
    }
    {  // preempted
      Harness h(
          {.max_num_batched_tokens = 64, .max_num_seqs = 8, .num_blocks = 5, .block_size = 4});
      for (RequestId id = 1; id <= 4; ++id) h.Add(id, Range(10 * id, 4), 8);
      CancelWhen(h, 4, is(SeqState::kPreempted), in_flight);
    }
    {  // n = 3 after the fork: every sample goes
      Harness h(o);
      h.Add(1, Range(0, 5), 6, 3);
      h.Add(2, Range(60, 5), 3);
      for (int i = 0; i < 2; ++i) h.Step();
      ASSERT_EQ(h.sched.Sequences(1).size(), 3u);
      CancelWhen(
          h, 1, [](const SeqSnapshot&) { return true; }, in_flight);
      EXPECT_EQ(h.finished[2].samples[0].tokens.size(), 3u);
    }
  }
}

TEST(SchedulerTest, ParallelSamplesForkAndShareThePrompt) {
  Harness h({.max_num_batched_tokens = 64, .max_num_seqs = 8, .num_blocks = 32, .block_size = 4});
  h.Add(1, Range(0, 6), 3, 3);
  const SchedulerOutput first = h.Step();
  ASSERT_EQ(first.seqs.size(), 1u);
  EXPECT_EQ(first.seqs[0].num_samples, 3);
  const std::vector<SeqSnapshot> seqs = h.sched.Sequences(1);
  ASSERT_EQ(seqs.size(), 3u);
  for (const SeqSnapshot& s : seqs) EXPECT_EQ(s.output.size(), 1u);

  const SchedulerOutput second = h.Step();
  ASSERT_EQ(second.seqs.size(), 3u);
  EXPECT_EQ(second.copies.size(), 2u);  // the shared half-full block, copied for two of three
  for (const ScheduledSeq& e : second.seqs) {
    EXPECT_EQ(e.start, 6);
    EXPECT_EQ(e.block_table[0],
              second.seqs[0].block_table[0]);  // the full prompt block stays shared
  }
  EXPECT_NE(second.seqs[0].block_table[1], second.seqs[1].block_table[1]);
  EXPECT_NE(second.seqs[1].block_table[1], second.seqs[2].block_table[1]);
  h.RunToEnd();
  ASSERT_EQ(h.finished[1].samples.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(h.finished[1].samples[k].tokens.size(), 3u);
    EXPECT_EQ(h.finished[1].samples[k].tokens[0], 1000 + 10 * 6 + k);  // each its own first sample
  }

  // max_tokens 1: the forks finish as soon as they are made.
  h.Add(2, Range(0, 6), 1, 4);
  h.Step();
  EXPECT_FALSE(h.sched.has_unfinished());
  ASSERT_EQ(h.finished[2].samples.size(), 4u);
  for (const SampleOutput& o : h.finished[2].samples) EXPECT_EQ(o.tokens.size(), 1u);
}

TEST(SchedulerTest, StopsAtADiscardedTokenAtTheCallersFlagAndAtMaxTokens) {
  Harness h({.max_num_batched_tokens = 64, .max_num_seqs = 8, .num_blocks = 32, .block_size = 4});
  h.Add(1, Range(0, 5), 10, 1);
  h.Add(2, Range(50, 5), 10);
  h.Add(3, Range(90, 5), 4);
  const SeqId s1 = h.OnlySeq(1), s2 = h.OnlySeq(2);
  int step = 0;
  auto sample = [&](const ScheduledSeq& e, int32_t k) {
    SampledToken t = DefaultSample(e, k);
    if (e.seq_id == s1 && step == 2)
      t = {.token = 8, .stop = true, .discard = true};  // an end of generation
    if (e.seq_id == s2 && step == 1) t.stop = true;
    return t;
  };
  for (; h.sched.has_unfinished(); ++step) h.Step(sample);
  EXPECT_EQ(h.finished[1].samples[0].reason, FinishReason::kStop);
  EXPECT_EQ(h.finished[1].samples[0].tokens.size(), 2u);  // the discarded token is not output
  EXPECT_EQ(h.finished[2].samples[0].reason, FinishReason::kStop);
  EXPECT_EQ(h.finished[2].samples[0].tokens.size(), 2u);  // the flagged token is
  EXPECT_EQ(h.finished[3].samples[0].reason, FinishReason::kLength);
  EXPECT_EQ(h.finished[3].samples[0].tokens.size(), 4u);
  EXPECT_EQ(h.sched.kv().pool().num_used(), 0);
}

TEST(SchedulerTest, UpdateRejectsInconsistentResultsAndAppliesNothing) {
  Harness h({.max_num_batched_tokens = 8, .max_num_seqs = 8, .num_blocks = 32, .block_size = 4});
  EXPECT_FALSE(h.sched.Update({.step = 0}).ok());  // nothing in flight
  h.Add(1, Range(0, 3), 4);
  h.Add(2, Range(10, 12), 4);  // chunked: no logits this step
  const SchedulerOutput out = h.sched.Schedule();
  ASSERT_EQ(out.seqs.size(), 2u);
  const SeqId a = out.seqs[0].seq_id, b = out.seqs[1].seq_id;
  const SeqStepResult good{.seq_id = a, .samples = {{.token = 5}}};
  EXPECT_FALSE(h.sched.Update({.step = out.step + 1, .seqs = {good}}).ok());
  EXPECT_FALSE(h.sched.Update({.step = out.step, .seqs = {}}).ok());
  EXPECT_FALSE(h.sched.Update({.step = out.step, .seqs = {{.seq_id = a, .samples = {}}}}).ok());
  EXPECT_FALSE(
      h.sched.Update({.step = out.step, .seqs = {{.seq_id = a, .samples = {{5}, {6}}}}}).ok());
  EXPECT_FALSE(h.sched.Update({.step = out.step, .seqs = {good, good}}).ok());
  EXPECT_FALSE(
      h.sched.Update({.step = out.step, .seqs = {good, {.seq_id = b, .samples = {{5}}}}}).ok());
  EXPECT_FALSE(
      h.sched.Update({.step = out.step, .seqs = {good, {.seq_id = 999, .samples = {{5}}}}}).ok());
  EXPECT_FALSE(h.sched.Update({.step = out.step, .seqs = {{.seq_id = a, .samples = {{-1}}}}}).ok());
  EXPECT_TRUE(h.sched.step_in_flight());
  EXPECT_EQ(h.sched.Sequences(1)[0].output.size(), 0u);
  EXPECT_TRUE(h.sched.CheckInvariants().ok());
  std::string error;
  const StepResult r = h.fwd.Run(out, DefaultSample, &error);
  ASSERT_EQ(error, "");
  ASSERT_TRUE(h.sched.Update(r).ok());
  EXPECT_EQ(h.sched.Sequences(1)[0].output.size(), 1u);
  h.RunToEnd();
}

TEST(SchedulerTest, PrefixCacheServesASharedSystemPromptAndASecondTurn) {
  Harness h({.max_num_batched_tokens = 512, .max_num_seqs = 8, .num_blocks = 64, .block_size = 16});
  const std::vector<int32_t> system = Range(1, 40);
  std::vector<int32_t> p1 = system;
  p1.insert(p1.end(), {500, 501, 502});
  h.Add(1, p1, 20);
  h.RunToEnd();
  std::vector<int32_t> p2 = system;
  p2.insert(p2.end(), {600, 601});
  h.Add(2, p2, 5);
  const SchedulerOutput o2 = h.Step();
  EXPECT_EQ(o2.seqs[0].start, 32);  // two full blocks of the system prompt
  EXPECT_EQ(h.sched.stats().prefix_hit_tokens, 32);
  h.RunToEnd();

  // Turn 2 of conversation 1: its prompt, its reply, a new message. 43 + 20 tokens, of which the
  // K/V of 62 was computed: three full blocks of 16.
  std::vector<int32_t> p3 = p1;
  p3.insert(p3.end(), h.finished[1].samples[0].tokens.begin(),
            h.finished[1].samples[0].tokens.end());
  p3.insert(p3.end(), {700, 701, 702});
  h.Add(3, p3, 5);
  const SchedulerOutput o3 = h.Step();
  EXPECT_EQ(o3.seqs[0].start, 48);
  const SchedulerStats st = h.sched.stats();
  EXPECT_EQ(st.prefix_hit_tokens, 32 + 48);
  EXPECT_EQ(st.prefix_query_tokens, static_cast<int64_t>(p1.size() + p2.size() + p3.size()));
  h.RunToEnd();

  // A prompt that is exactly two cached blocks: the second block is recomputed for its logits.
  h.Add(4, Range(1, 32), 2);
  const SchedulerOutput o4 = h.Step();
  ASSERT_EQ(o4.seqs.size(), 1u);
  EXPECT_EQ(o4.seqs[0].start, 16);
  EXPECT_EQ(o4.seqs[0].tokens.size(), 16u);
  EXPECT_TRUE(o4.seqs[0].needs_logits);
  h.RunToEnd();
}

}  // namespace
}  // namespace gannet::engine
