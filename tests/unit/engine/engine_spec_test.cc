// Speculative decoding on tiny models: with n-gram drafts verified as token trees, every request
// gives exactly what it gives without speculation (tokens, texts, log-probabilities, finish
// reasons), greedy or sampled with a seed, with n > 1, stop strings, grammars, a small KV pool that
// forces preemption, and many requests batched together; and drafts are actually verified and
// accepted on repetitive text.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace gannet::engine {
namespace {

const std::string kDir = std::string(GANNET_FIXTURES_DIR) + "/tiny/";

struct Outcome {
  std::vector<std::vector<int32_t>> tokens;  // per sample
  std::vector<std::vector<float>> logprobs;  // per sample
  std::vector<std::string> text;             // per sample, tail included
  std::vector<FinishReason> finish;
  bool operator==(const Outcome&) const = default;
};

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Outcome out;
  Status status;
  GenerationCallbacks Callbacks(int n) {
    out.tokens.assign(n, {});
    out.logprobs.assign(n, {});
    out.text.assign(n, {});
    return {.on_token =
                [this](const TokenEvent& ev) {
                  std::lock_guard<std::mutex> lock(mu);
                  out.tokens[ev.sample_index].push_back(ev.token);
                  out.logprobs[ev.sample_index].push_back(ev.logprob);
                  out.text[ev.sample_index] += ev.text;
                },
            .on_done =
                [this](const GenerationResult& r) {
                  std::lock_guard<std::mutex> lock(mu);
                  status = r.status;
                  for (size_t i = 0; i < r.samples.size(); ++i) {
                    out.text[i] += r.samples[i].tail;
                    out.finish.push_back(r.samples[i].finish);
                  }
                  done = true;
                  cv.notify_all();
                }};
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(120), [&] { return done; });
  }
};

// A prompt that repeats a short pattern: its continuation is guessable from its own n-grams.
std::vector<int32_t> Repetitive(int i, int len, int64_t n_vocab) {
  std::vector<int32_t> p;
  const int period = 3 + i % 4;
  for (int k = 0; k < len; ++k)
    p.push_back(static_cast<int32_t>((11 * i + 5 * (k % period) + 2) % n_vocab));
  return p;
}

// Runs all requests concurrently on one engine; returns their outcomes and the engine's stats.
std::vector<Outcome> RunAll(ModelRunner* runner, EngineOptions options,
                            const std::vector<GenerationRequest>& requests, EngineStats* stats) {
  auto eng = Engine::Create(runner, options);
  EXPECT_TRUE(eng.ok()) << eng.status().ToString();
  std::vector<Collector> col(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_TRUE((*eng)->Submit(requests[i], col[i].Callbacks(requests[i].n)).ok());
  }
  std::vector<Outcome> outs;
  for (Collector& c : col) {
    EXPECT_TRUE(c.Wait());
    EXPECT_TRUE(c.status.ok()) << c.status.ToString();
    outs.push_back(c.out);
  }
  (*eng)->Shutdown(std::chrono::milliseconds(0));
  *stats = (*eng)->stats();
  EXPECT_EQ(stats->kv_blocks_used, 0);
  return outs;
}

class EngineSpecTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineSpecTest, GreedyOutputIsIdenticalWithAndWithoutSpeculation) {
  auto runner = ModelRunner::Load(kDir + GetParam() + ".gguf", {.n_threads = 2, .n_ctx = 128});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  const int64_t n_vocab = (*runner)->config().n_vocab;
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 8; ++i) {
    reqs.push_back({.prompt = Repetitive(i, 12 + 3 * i, n_vocab),
                    .max_tokens = 20 + 7 * (i % 3),
                    .sampling = {.temperature = 0.0f},
                    .stop_at_eog = false});
  }
  // A small pool and budget: steps mix prompt chunks, decodes and drafts; sequences get preempted.
  EngineOptions base{.block_size = 4,
                     .kv_memory_bytes = 40 * PagedKvStore::BytesPerBlock((*runner)->config(), 4),
                     .max_batch_tokens = 40,
                     .max_seqs = 6,
                     // No timing in the schedule: chunks from the token budget alone, drafts
                     // whatever the measured costs.
                     .itl_factor = 0};
  EngineStats plain_stats, spec_stats;
  const std::vector<Outcome> plain = RunAll(runner->get(), base, reqs, &plain_stats);
  EngineOptions spec = base;
  spec.spec = SpecMethod::kNgram;
  spec.spec_max_tokens = 8;
  spec.spec_adaptive = false;
  const std::vector<Outcome> fast = RunAll(runner->get(), spec, reqs, &spec_stats);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(plain[i], fast[i]) << "request " << i;
  EXPECT_EQ(plain_stats.spec_draft_tokens, 0);
  EXPECT_GT(spec_stats.spec_steps, 0);
  EXPECT_GT(spec_stats.spec_accepted_tokens, 0);
  EXPECT_LE(spec_stats.spec_accepted_tokens, spec_stats.spec_draft_tokens);
  // Steps are compared per request alone below: with all eight at once, how many the engine's
  // first steps admit depends on how far the submitting thread got (a step may start after the
  // first Submit), so the two runs' schedules, and step counts, may differ by a step or two.
  // Each request alone: accepted drafts save steps, and drafts, taking only leftover budget,
  // never add one.
  int64_t steps_plain = 0, steps_spec = 0;
  for (const GenerationRequest& r : reqs) {
    EngineStats lone_plain, lone_spec;
    const std::vector<Outcome> a = RunAll(runner->get(), base, {r}, &lone_plain);
    const std::vector<Outcome> b = RunAll(runner->get(), spec, {r}, &lone_spec);
    EXPECT_EQ(a[0], b[0]);
    EXPECT_LE(lone_spec.steps, lone_plain.steps);
    steps_plain += lone_plain.steps;
    steps_spec += lone_spec.steps;
  }
  EXPECT_LT(steps_spec, steps_plain);
}

INSTANTIATE_TEST_SUITE_P(Tiny, EngineSpecTest,
                         ::testing::Values("tiny-llama-f32", "tiny-gemma3-f32", "tiny-llama-q"));

class EngineSpecControl : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = ModelRunner::Load(kDir + "tiny-llama-f32.gguf", {.n_threads = 2, .n_ctx = 128});
    ASSERT_TRUE(r.ok());
    runner_ = std::move(*r);
    n_vocab_ = runner_->config().n_vocab;
  }
  // The same requests with and without speculation; EXPECTs identical outcomes.
  void ExpectSame(const std::vector<GenerationRequest>& reqs, EngineStats* spec_stats = nullptr) {
    EngineOptions base{.block_size = 4, .max_batch_tokens = 64, .max_seqs = 16};
    EngineOptions spec = base;
    spec.spec = SpecMethod::kNgram;
    spec.spec_adaptive = false;
    EngineStats a, b;
    const std::vector<Outcome> plain = RunAll(runner_.get(), base, reqs, &a);
    const std::vector<Outcome> fast = RunAll(runner_.get(), spec, reqs, &b);
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(plain[i], fast[i]) << "request " << i;
    if (spec_stats != nullptr) *spec_stats = b;
  }
  std::unique_ptr<ModelRunner> runner_;
  int64_t n_vocab_ = 0;
};

TEST_F(EngineSpecControl, SeededSamplingWithSamplesLogprobsAndStopsIsUnchanged) {
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    reqs.push_back({.prompt = Repetitive(i, 16, n_vocab_),
                    .max_tokens = 24,
                    .n = 1 + i % 3,
                    .sampling = {.temperature = 0.7f,
                                 .top_k = 0,
                                 .top_p = 0.95f,
                                 .min_p = 0.0f,
                                 .repeat_penalty = 1.1f,
                                 .seed = 100u + static_cast<uint64_t>(i)},
                    .stop_at_eog = false,
                    .stop = {"zz", "\n\n"},
                    .top_logprobs = 2});
  }
  EngineStats st;
  ExpectSame(reqs, &st);
  EXPECT_GT(st.spec_steps, 0);
}

TEST_F(EngineSpecControl, GrammarConstrainedOutputIsUnchanged) {
  Result<std::shared_ptr<const grammar::Grammar>> g =
      grammar::Grammar::Compile("root ::= ([a-d] [a-d] \" \")+ \".\"");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 3; ++i) {
    reqs.push_back({.prompt = Repetitive(i, 10, n_vocab_),
                    .max_tokens = 30,
                    .n = 2,
                    .sampling = {.temperature = 0.0f},
                    .grammar = *g});
  }
  ExpectSame(reqs);
}

// The distribution of sampled tokens is the target model's: over many seeds, the histogram of
// the tokens at each position is the same with and without speculation (a chi-square statistic of
// zero; the per-seed outputs are identical, which is stronger).
TEST_F(EngineSpecControl, SampledDistributionMatchesWithoutSpeculation) {
  std::vector<GenerationRequest> reqs;
  for (uint64_t seed = 1; seed <= 48; ++seed) {
    reqs.push_back(
        {.prompt = Repetitive(1, 12, n_vocab_),
         .max_tokens = 8,
         .sampling = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = seed},
         .stop_at_eog = false});
  }
  EngineOptions base{.block_size = 4, .max_batch_tokens = 128, .max_seqs = 16};
  EngineOptions spec = base;
  spec.spec = SpecMethod::kNgram;
  EngineStats a, b;
  const std::vector<Outcome> plain = RunAll(runner_.get(), base, reqs, &a);
  const std::vector<Outcome> fast = RunAll(runner_.get(), spec, reqs, &b);
  for (size_t pos = 0; pos < 8; ++pos) {
    std::map<int32_t, std::pair<int, int>> hist;
    for (size_t i = 0; i < reqs.size(); ++i) {
      ++hist[plain[i].tokens[0].at(pos)].first;
      ++hist[fast[i].tokens[0].at(pos)].second;
    }
    double chi2 = 0;
    for (const auto& [tok, c] : hist) {
      const double e = (c.first + c.second) / 2.0;
      chi2 += (c.first - e) * (c.first - e) / e + (c.second - e) * (c.second - e) / e;
    }
    EXPECT_EQ(chi2, 0.0) << "position " << pos;
  }
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(plain[i], fast[i]) << "seed " << i + 1;
}

TEST_F(EngineSpecControl, RejectsBadSpecOptions) {
  EXPECT_FALSE(
      Engine::Create(runner_.get(), {.spec = SpecMethod::kNgram, .spec_max_tokens = 0}).ok());
  EXPECT_FALSE(
      Engine::Create(runner_.get(), {.spec = SpecMethod::kNgram, .spec_max_tokens = 64}).ok());
  EXPECT_TRUE(ParseSpecMethod("ngram").ok());
  EXPECT_EQ(ParseSpecMethod("draft").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gannet::engine
