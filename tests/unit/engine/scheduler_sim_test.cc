// Randomized simulation of the scheduler against a small pool: random arrivals (shared system
// prompts, second turns of finished conversations, n > 1), random lengths, EOS and stop flags,
// cancellations between steps and between Schedule and Update. After every step: pool and
// scheduler invariants (ref counts equal block-table references, nothing leaked or freed twice),
// budgets, decodes never starved, and the fake forward pass checks every sequence reads exactly
// its own tokens' K/V. At the end: every request finished, with the output length it asked for.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/scheduler.h"
#include "scheduler_test_util.h"

namespace gannet::engine {
namespace {

struct SimConfig {
  uint64_t seed = 1;
  SchedulerOptions sched;
  int arrival_steps = 3000;   // steps during which requests arrive
  double arrival_prob = 0.2;  // per step (up to two arrivals)
  int max_suffix = 60;        // random prompt part after a shared prefix
  int max_tokens = 40;
  double cancel_prob = 0.01;  // per step, each of: between steps, in flight
  double eos_prob = 0.02;     // per sampled token of a request with an EOS id
  double stop_prob = 0.005;   // per sampled token: the caller's stop flag
};

struct SimFigures {
  int64_t steps = 0, requests = 0, finished = 0, cancelled = 0, too_long = 0, forks = 0;
  SchedulerStats stats;
};

struct Pending {
  SchedulerRequest spec;
  bool ends_at_eos = false;  // samples may end with a discarded end-of-generation token
  bool cancelled = false;
};

SimFigures Simulate(const SimConfig& c) {
  SimFigures fig;
  std::mt19937_64 rng(c.seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  constexpr int32_t kEos = 2;

  Result<Scheduler> created = Scheduler::Create(c.sched);
  EXPECT_TRUE(created.ok());
  Scheduler s = std::move(created).value();
  testing::FakeForward fwd(c.sched);

  std::vector<std::vector<int32_t>> system_prompts;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> p(uniform(8, 48));
    for (int32_t& t : p) t = uniform(3, 31999);
    system_prompts.push_back(std::move(p));
  }
  std::vector<std::vector<int32_t>> conversations;  // finished prompt + output, for second turns
  std::unordered_map<RequestId, Pending> live;
  RequestId next_id = 1;

  auto add_request = [&] {
    SchedulerRequest r{.id = next_id++};
    if (!conversations.empty() && chance(0.15)) {
      r.prompt = conversations[uniform(0, static_cast<int>(conversations.size()) - 1)];
    } else if (chance(0.6)) {
      r.prompt = system_prompts[uniform(0, 3)];
    }
    const int suffix =
        chance(0.02) ? uniform(150, 400) : uniform(1, c.max_suffix);  // a few too long
    for (int i = 0; i < suffix; ++i) r.prompt.push_back(uniform(3, 31999));
    r.max_tokens = uniform(1, c.max_tokens);
    r.n = chance(0.15) ? uniform(2, 3) : 1;
    const bool ends_at_eos = chance(0.5);
    fwd.AddPrompt(r.id, r.prompt);
    const Status st = s.AddRequest(r);
    EXPECT_TRUE(st.ok()) << st.ToString();
    live[r.id] = {.spec = std::move(r), .ends_at_eos = ends_at_eos};
    ++fig.requests;
  };
  auto sample = [&](const ScheduledSeq& e, int32_t) {
    const Pending& p = live.at(e.request_id);
    SampledToken t{.token = uniform(3, 31999)};
    if (p.ends_at_eos && chance(c.eos_prob))
      return SampledToken{.token = kEos, .stop = true, .discard = true};
    t.stop = chance(c.stop_prob);
    return t;
  };
  auto collect = [&] {
    for (const FinishedRequest& f : s.TakeFinished()) {
      const auto it = live.find(f.id);
      EXPECT_NE(it, live.end()) << "request " << f.id << " finished twice or never added";
      if (it == live.end()) continue;
      const Pending& p = it->second;
      EXPECT_EQ(static_cast<int32_t>(f.samples.size()), p.spec.n);
      const int64_t slots = static_cast<int64_t>(p.spec.prompt.size()) + p.spec.max_tokens - 1;
      const bool fits = (slots + c.sched.block_size - 1) / c.sched.block_size <= c.sched.num_blocks;
      for (const SampleOutput& o : f.samples) {
        const int64_t n = static_cast<int64_t>(o.tokens.size());
        switch (o.reason) {
          case FinishReason::kLength:
            EXPECT_EQ(n, p.spec.max_tokens);
            break;
          case FinishReason::kStop:
            EXPECT_LE(n, p.spec.max_tokens);
            break;
          case FinishReason::kCancelled:
            EXPECT_TRUE(p.cancelled);
            EXPECT_LE(n, p.spec.max_tokens);
            break;
          case FinishReason::kError:
            EXPECT_FALSE(fits);
            EXPECT_EQ(n, 0);
            EXPECT_FALSE(f.status.ok());
            break;
        }
        EXPECT_TRUE(o.finished);
        if (o.reason == FinishReason::kError) ++fig.too_long;
        if (o.reason == FinishReason::kCancelled) ++fig.cancelled;
        if (o.reason != FinishReason::kError && o.reason != FinishReason::kCancelled) {
          EXPECT_TRUE(fits);
          if (conversations.size() < 64) {
            std::vector<int32_t> conv = p.spec.prompt;
            conv.insert(conv.end(), o.tokens.begin(), o.tokens.end());
            conversations.push_back(std::move(conv));
          }
        }
      }
      if (f.samples.size() > 1) fig.forks += static_cast<int64_t>(f.samples.size()) - 1;
      live.erase(it);
      ++fig.finished;
    }
  };

  auto cancel_random = [&] {
    collect();  // a request that just finished (e.g. too long) can no longer be cancelled
    if (live.empty()) return;
    auto it = live.begin();
    std::advance(it, uniform(0, static_cast<int>(live.size()) - 1));
    const Status st = s.Cancel(it->first);
    EXPECT_TRUE(st.ok()) << st.ToString();
    it->second.cancelled = true;
  };
  const int max_steps = c.arrival_steps * 20;
  int step = 0;
  for (; step < max_steps && (step < c.arrival_steps || s.has_unfinished()); ++step) {
    if (step < c.arrival_steps) {
      for (int i = 0; i < 2; ++i) {
        if (chance(c.arrival_prob)) add_request();
      }
      if (chance(c.cancel_prob)) cancel_random();
    }
    collect();

    // Sequences that only need their next token must get it (or be preempted) this step.
    std::unordered_set<SeqId> decode_ready;
    for (const auto& [rid, p] : live) {
      for (const SeqSnapshot& q : s.Sequences(rid)) {
        const int32_t n_tokens = q.num_prompt + static_cast<int32_t>(q.output.size());
        if (q.state == SeqState::kRunning && q.num_computed + 1 == n_tokens) {
          decode_ready.insert(q.id);
        }
      }
    }
    const SchedulerOutput out = s.Schedule();
    if (out.empty()) {
      EXPECT_FALSE(s.has_unfinished())
          << "step " << step << ": nothing scheduled while requests wait";
      continue;
    }
    for (const ScheduledSeq& e : out.seqs) decode_ready.erase(e.seq_id);
    for (const SeqId id : out.preempted) decode_ready.erase(id);
    EXPECT_TRUE(decode_ready.empty()) << "step " << step << ": a decode was starved";

    std::string error;
    const StepResult r = fwd.Run(out, sample, &error);
    EXPECT_EQ(error, "");
    if (!error.empty()) break;
    if (step < c.arrival_steps && chance(c.cancel_prob)) cancel_random();  // client left mid-step
    const Status u = s.Update(r);
    EXPECT_TRUE(u.ok()) << u.ToString();
    const Status inv = s.CheckInvariants();
    EXPECT_TRUE(inv.ok()) << "step " << step << ": " << inv.ToString();
    if (!inv.ok() || !u.ok()) break;
  }
  collect();
  fig.steps = step;
  fig.stats = s.stats();
  EXPECT_FALSE(s.has_unfinished()) << "requests left after " << step << " steps";
  EXPECT_TRUE(live.empty());
  EXPECT_EQ(fig.finished, fig.requests);
  EXPECT_EQ(s.kv().pool().num_used(), 0);
  EXPECT_TRUE(s.kv().pool().CheckInvariants().ok());
  return fig;
}

void Report(const char* name, const SimFigures& f) {
  const double hit =
      f.stats.prefix_query_tokens > 0
          ? 100.0 * static_cast<double>(f.stats.prefix_hit_tokens) / f.stats.prefix_query_tokens
          : 0.0;
  std::printf(
      "[sim %s] steps=%lld requests=%lld forks=%lld cancelled_samples=%lld too_long=%lld "
      "preemptions=%lld "
      "prefix_hit=%lld/%lld tokens (%.1f%%) scheduled_tokens=%lld\n",
      name, static_cast<long long>(f.steps), static_cast<long long>(f.requests),
      static_cast<long long>(f.forks), static_cast<long long>(f.cancelled),
      static_cast<long long>(f.too_long), static_cast<long long>(f.stats.num_preemptions),
      static_cast<long long>(f.stats.prefix_hit_tokens),
      static_cast<long long>(f.stats.prefix_query_tokens), hit,
      static_cast<long long>(f.stats.num_scheduled_tokens));
  ::testing::Test::RecordProperty(std::string(name) + "_preemptions",
                                  std::to_string(f.stats.num_preemptions));
}

TEST(SchedulerSimTest, SmallPoolHeavyPreemption) {
  SimConfig c{
      .seed = 17,
      .sched = {
          .max_num_batched_tokens = 48, .max_num_seqs = 8, .num_blocks = 48, .block_size = 4}};
  const SimFigures f = Simulate(c);
  Report("small_pool", f);
  EXPECT_GT(f.stats.num_preemptions, 100);  // the pool is meant to be too small
  EXPECT_GT(f.stats.prefix_hit_tokens, 0);
  EXPECT_GT(f.forks, 0);
  EXPECT_GT(f.cancelled, 0);
  EXPECT_GT(f.too_long, 0);
}

TEST(SchedulerSimTest, RoomyPoolManyPrefixHits) {
  SimConfig c{.seed = 5,
              .sched = {.max_num_batched_tokens = 128,
                        .max_num_seqs = 16,
                        .num_blocks = 256,
                        .block_size = 16},
              .arrival_prob = 0.35};
  const SimFigures f = Simulate(c);
  Report("roomy_pool", f);
  EXPECT_GT(f.stats.prefix_hit_tokens * 5, f.stats.prefix_query_tokens);  // > 20% of prompt tokens
}

TEST(SchedulerSimTest, TinyBlocksAndBudget) {
  // Block size 1 and 2 reach the edge cases: every token its own block, copy-on-write at every
  // fork.
  for (const int32_t bs : {1, 2}) {
    SimConfig c{.seed = 99 + static_cast<uint64_t>(bs),
                .sched = {.max_num_batched_tokens = 12,
                          .max_num_seqs = 6,
                          .num_blocks = 160 / bs,
                          .block_size = bs},
                .arrival_steps = 1500,
                .arrival_prob = 0.1,
                .max_suffix = 30,
                .max_tokens = 20};
    const SimFigures f = Simulate(c);
    Report(bs == 1 ? "block_size_1" : "block_size_2", f);
  }
}

}  // namespace
}  // namespace gannet::engine
