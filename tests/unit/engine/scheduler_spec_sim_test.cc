// Randomized simulation of the scheduler with speculative drafts: random requests (shared prompt
// prefixes, n > 1), random draft trees handed back with every sample, random acceptance along the
// trees, stop flags, cancellations between steps and between Schedule and Update, on pools small
// enough to preempt. After every step: the scheduler's and the pool's invariants, budgets, and
// that drafts cause no preemption. At the end: nothing leaked, and every finished sample holds
// exactly the tokens the "engine" accepted for it, at most max_tokens of them.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "engine/scheduler.h"

namespace gannet::engine {
namespace {

struct Sim {
  std::mt19937_64 rng;
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

  Draft RandomDraft() {
    Draft d;
    const int m = Chance(0.3) ? 0 : Uniform(1, 12);
    for (int i = 0; i < m; ++i) {
      d.tokens.push_back(Uniform(3, 9));
      d.parents.push_back(Uniform(-1, i - 1));
    }
    return d;
  }

  // The "engine": walks a speculative entry's tree, accepting a matching child with some chance.
  std::vector<SampledToken> Verify(const ScheduledSeq& e) {
    std::vector<SampledToken> out;
    int node = 0;
    for (;;) {
      std::vector<int> kids;
      for (size_t c = 0; c < e.tokens.size(); ++c) {
        if (e.tree_parents[c] == node && c != 0) kids.push_back(static_cast<int>(c));
      }
      SampledToken t{.token = Uniform(3, 9)};
      int next = -1;
      if (!kids.empty() && Chance(0.7)) {
        next = kids[static_cast<size_t>(Uniform(0, static_cast<int>(kids.size()) - 1))];
        t.token = e.tokens[static_cast<size_t>(next)];
      } else {
        for (int c : kids) {
          if (e.tokens[static_cast<size_t>(c)] == t.token) next = c;
        }
      }
      if (Chance(0.01)) t.stop = true;
      out.push_back(t);
      if (t.stop || next < 0) return out;
      node = next;
    }
  }
};

void Simulate(uint64_t seed, const SchedulerOptions& o) {
  Sim sim{std::mt19937_64(seed)};
  Result<Scheduler> created = Scheduler::Create(o);
  ASSERT_TRUE(created.ok());
  Scheduler s = std::move(created).value();
  std::map<std::pair<RequestId, int32_t>, std::vector<int32_t>> expected;  // accepted tokens
  std::map<RequestId, int32_t> max_tokens;
  std::vector<RequestId> live;
  RequestId next_id = 1;
  int64_t spec_entries = 0;
  for (int step = 0; step < 4000 && (step < 3000 || s.has_unfinished()); ++step) {
    if (step < 3000 && sim.Chance(0.25)) {
      std::vector<int32_t> prompt(static_cast<size_t>(sim.Uniform(1, 40)));
      for (size_t i = 0; i < prompt.size(); ++i)
        prompt[i] = i < 16 ? static_cast<int32_t>(i % 5 + 3) : sim.Uniform(3, 9);
      const int32_t mt = sim.Uniform(1, 30), n = sim.Chance(0.2) ? 2 : 1;
      ASSERT_TRUE(s.AddRequest({.id = next_id, .prompt = prompt, .max_tokens = mt, .n = n}).ok());
      max_tokens[next_id] = mt;
      live.push_back(next_id++);
    }
    if (!live.empty() && sim.Chance(0.01))
      (void)s.Cancel(live[static_cast<size_t>(sim.Uniform(0, static_cast<int>(live.size()) - 1))]);
    const SchedulerOutput out = s.Schedule(sim.Uniform(1, o.max_num_batched_tokens));
    if (out.empty()) continue;
    ASSERT_LE(out.num_tokens, o.max_num_batched_tokens);
    int32_t total = 0;
    StepResult r{.step = out.step};
    for (const ScheduledSeq& e : out.seqs) {
      total += static_cast<int32_t>(e.tokens.size());
      if (!e.needs_logits) continue;
      SeqStepResult sr{.seq_id = e.seq_id};
      if (e.speculative()) {
        ++spec_entries;
        sr.samples = sim.Verify(e);
      } else {
        for (int32_t k = 0; k < e.num_samples; ++k)
          sr.samples.push_back({.token = sim.Uniform(3, 9), .stop = sim.Chance(0.01)});
      }
      for (size_t k = 0; k < sr.samples.size(); ++k) {
        const int32_t index =
            e.speculative() ? e.sample_index : e.sample_index + static_cast<int32_t>(k);
        expected[{e.request_id, index}].push_back(sr.samples[k].token);
      }
      sr.draft = sim.RandomDraft();
      r.seqs.push_back(std::move(sr));
    }
    ASSERT_EQ(total, out.num_tokens);
    if (sim.Chance(0.01) && !live.empty())
      (void)s.Cancel(live[static_cast<size_t>(sim.Uniform(0, static_cast<int>(live.size()) - 1))]);
    const Status st = s.Update(r);
    ASSERT_TRUE(st.ok()) << st.ToString();
    const Status inv = s.CheckInvariants();
    ASSERT_TRUE(inv.ok()) << "step " << step << ": " << inv.ToString();
    for (FinishedRequest& f : s.TakeFinished()) {
      live.erase(std::find(live.begin(), live.end(), f.id));
      for (size_t i = 0; i < f.samples.size(); ++i) {
        const SampleOutput& so = f.samples[i];
        if (so.reason == FinishReason::kCancelled) continue;
        ASSERT_LE(static_cast<int32_t>(so.tokens.size()), max_tokens[f.id]);
        const std::vector<int32_t>& want = expected[{f.id, static_cast<int32_t>(i)}];
        ASSERT_EQ(so.tokens, want) << "request " << f.id << " sample " << i;
        if (so.reason == FinishReason::kLength)
          EXPECT_EQ(static_cast<int32_t>(so.tokens.size()), max_tokens[f.id]);
      }
    }
  }
  EXPECT_FALSE(s.has_unfinished());
  EXPECT_EQ(s.kv().pool().num_used(), 0);
  EXPECT_GT(spec_entries, 100);
  const SchedulerStats st = s.stats();
  EXPECT_GT(st.num_accepted_tokens, 0);
  std::printf(
      "[spec sim seed %llu] steps=%lld spec_entries=%lld drafted=%lld accepted=%lld "
      "preemptions=%lld\n",
      static_cast<unsigned long long>(seed), static_cast<long long>(st.num_steps),
      static_cast<long long>(spec_entries), static_cast<long long>(st.num_draft_tokens),
      static_cast<long long>(st.num_accepted_tokens), static_cast<long long>(st.num_preemptions));
}

TEST(SchedulerSpecSimTest, SmallPoolWithPreemption) {
  Simulate(1, {.max_num_batched_tokens = 48, .max_num_seqs = 8, .num_blocks = 40, .block_size = 4});
}

TEST(SchedulerSpecSimTest, TinyPoolHeavyPreemption) {
  for (uint64_t seed = 10; seed < 14; ++seed)
    Simulate(seed,
             {.max_num_batched_tokens = 32, .max_num_seqs = 8, .num_blocks = 20, .block_size = 4});
}

TEST(SchedulerSpecSimTest, RoomyPool) {
  Simulate(
      2, {.max_num_batched_tokens = 128, .max_num_seqs = 16, .num_blocks = 400, .block_size = 16});
}

TEST(SchedulerSpecSimTest, BlockSizeOne) {
  Simulate(3,
           {.max_num_batched_tokens = 24, .max_num_seqs = 4, .num_blocks = 120, .block_size = 1});
}

}  // namespace
}  // namespace gannet::engine
