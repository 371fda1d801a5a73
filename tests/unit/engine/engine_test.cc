// The Engine on tiny models: many concurrent requests batched every step give exactly what each
// gives alone (ModelRunner::Evaluate, one token at a time); stop strings, cancellation, n > 1,
// queue limits and shutdown free every KV block.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace gannet::engine {
namespace {

const std::string kDir = std::string(GANNET_FIXTURES_DIR) + "/tiny/";

struct Collected {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<int32_t>> tokens;  // per sample
  bool done = false;
  std::vector<std::string> text;  // per sample: every delta, then the tail
  GenerationResult result;

  GenerationCallbacks Callbacks(int n) {
    tokens.assign(n, {});
    text.assign(n, {});
    return GenerationCallbacks{.on_token =
                                   [this](const TokenEvent& ev) {
                                     std::lock_guard<std::mutex> lock(mu);
                                     tokens[ev.sample_index].push_back(ev.token);
                                     text[ev.sample_index] += ev.text;
                                   },
                               .on_done =
                                   [this](const GenerationResult& r) {
                                     std::lock_guard<std::mutex> lock(mu);
                                     result = r;
                                     for (size_t i = 0; i < r.samples.size() && i < text.size();
                                          ++i)
                                       text[i] += r.samples[i].tail;
                                     done = true;
                                     cv.notify_all();
                                   }};
  }
  bool Wait(std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, limit, [&] { return done; });
  }
};

std::vector<int32_t> Prompt(int i, int len, int64_t n_vocab) {
  std::vector<int32_t> p;
  for (int k = 0; k < len; ++k) p.push_back(static_cast<int32_t>((7 * i + 3 * k + 1) % n_vocab));
  return p;
}

// Greedy tokens of one sequence alone, one forward pass per token on the runner's own sequence.
std::vector<int32_t> GreedyAlone(ModelRunner& runner, const std::vector<int32_t>& prompt,
                                 int max_tokens) {
  Sampler sampler(SamplingParams{.temperature = 0.0f},
                  static_cast<int32_t>(runner.config().n_vocab));
  std::vector<int32_t> out;
  Result<std::span<const float>> l = runner.Evaluate(prompt, 0, false);
  int64_t n_past = static_cast<int64_t>(prompt.size());
  std::vector<float> work;
  while (l.ok()) {
    work.assign(l->begin(), l->end());
    out.push_back(sampler.Sample(work));
    if (static_cast<int>(out.size()) == max_tokens) return out;
    const int32_t one[1] = {out.back()};
    l = runner.Evaluate(one, n_past++, false);
  }
  ADD_FAILURE() << l.status().ToString();
  return out;
}

void WaitForIdle(const Engine& s) {
  for (int i = 0; i < 2000; ++i) {
    const EngineStats st = s.stats();
    if (st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

class EngineTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineTest, ConcurrentGreedyRequestsMatchEachAlone) {
  const std::string path = kDir + GetParam() + ".gguf";
  auto alone = ModelRunner::Load(path, {.n_threads = 1, .n_ctx = 64});
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  const int64_t n_vocab = (*alone)->config().n_vocab;
  constexpr int kRequests = 12;
  std::vector<std::vector<int32_t>> want;
  SamplingParams greedy{.temperature = 0.0f};
  for (int i = 0; i < kRequests; ++i) {
    want.push_back(GreedyAlone(**alone, Prompt(i, 3 + (i * 5) % 23, n_vocab), 6 + i % 5));
  }

  auto eng = ModelRunner::Load(path, {.n_threads = 2, .n_ctx = 64});
  ASSERT_TRUE(eng.ok());
  // A small pool and budget, so that steps mix prefill chunks with decodes and some sequences
  // are preempted and recomputed. No prefill pacing: its chunks (and decode-only steps) follow
  // measured step times, and the schedule is to be the same on every run.
  const size_t pool_bytes =
      20 * PagedKvStore::BytesPerBlock((*eng)->config(), 4);  // 80 token slots
  auto serving = Engine::Create(eng->get(), {.block_size = 4,
                                             .kv_memory_bytes = pool_bytes,
                                             .max_batch_tokens = 24,
                                             .max_seqs = 6,
                                             .max_queue = 64,
                                             .itl_factor = 0.0});
  ASSERT_TRUE(serving.ok()) << serving.status().ToString();
  // A gate request holds the step thread in its callback until every request is queued, so all
  // are admitted together and the schedule (preemptions included) does not depend on timing.
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
  Collected gate;
  GenerationCallbacks gate_cb = gate.Callbacks(1);
  gate_cb.on_token = [opened](const TokenEvent&) { opened.wait(); };
  ASSERT_TRUE(
      (*serving)->Submit({.prompt = {1, 2}, .max_tokens = 1, .stop_at_eog = false}, gate_cb).ok());
  std::vector<Collected> got(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    GenerationRequest r{.prompt = Prompt(i, 3 + (i * 5) % 23, n_vocab),
                        .max_tokens = 6 + i % 5,
                        .sampling = greedy,
                        .stop_at_eog = false};
    EXPECT_TRUE(
        (*serving)->Submit(std::move(r), got[i].Callbacks(1)).ok());  // no early return: the gate
  }
  open.set_value();
  ASSERT_TRUE(gate.Wait());
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(got[i].Wait());
    EXPECT_TRUE(got[i].result.status.ok());
    EXPECT_EQ(got[i].tokens[0], want[i]) << "request " << i;
    EXPECT_EQ(got[i].result.completion_tokens, static_cast<int64_t>(want[i].size()));
    ASSERT_EQ(got[i].result.samples.size(), 1u);
    EXPECT_EQ(got[i].result.samples[0].finish, FinishReason::kLength);
  }
  WaitForIdle(**serving);
  const EngineStats st = (*serving)->stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.requests_finished, kRequests + 1);
  EXPECT_GT(st.steps, 0);
  EXPECT_GT(st.preemptions, 0);  // the pool is too small for six sequences at once
}

INSTANTIATE_TEST_SUITE_P(Tiny, EngineTest,
                         ::testing::Values("tiny-llama-f32", "tiny-gemma3-f32", "tiny-llama-q"));

class EngineControl : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = ModelRunner::Load(kDir + "tiny-llama-f32.gguf", {.n_threads = 1, .n_ctx = 64});
    ASSERT_TRUE(e.ok());
    eng_ = std::move(*e);
    n_vocab_ = eng_->config().n_vocab;
  }
  std::unique_ptr<ModelRunner> eng_;
  int64_t n_vocab_ = 0;
};

TEST_F(EngineControl, CancelStopAndSamples) {
  auto s = Engine::Create(eng_.get(), {.block_size = 4, .max_batch_tokens = 32, .max_seqs = 8});
  ASSERT_TRUE(s.ok());
  // Stop strings: the text ends right before the first one to complete, the sample ends with the
  // token that completed it, and the finish reason is kStop.
  Collected free_run;
  SamplingParams greedy{.temperature = 0.0f};
  ASSERT_TRUE((*s)->Submit({.prompt = Prompt(1, 5, n_vocab_),
                            .max_tokens = 20,
                            .sampling = greedy,
                            .stop_at_eog = false},
                           free_run.Callbacks(1))
                  .ok());
  ASSERT_TRUE(free_run.Wait());
  const std::string full = free_run.text[0];
  ASSERT_GE(full.size(), 8u);
  const std::string stop = full.substr(full.size() / 2, 3);
  Collected a;
  ASSERT_TRUE((*s)->Submit({.prompt = Prompt(1, 5, n_vocab_),
                            .max_tokens = 20,
                            .sampling = greedy,
                            .stop_at_eog = false,
                            .stop = {"never appears \x01", stop}},
                           a.Callbacks(1))
                  .ok());
  ASSERT_TRUE(a.Wait());
  EXPECT_EQ(a.text[0], full.substr(0, full.find(stop)));
  EXPECT_EQ(a.result.samples[0].finish, FinishReason::kStop);
  EXPECT_LT(a.tokens[0].size(), free_run.tokens[0].size());
  EXPECT_EQ(a.tokens[0], std::vector<int32_t>(
                             free_run.tokens[0].begin(),
                             free_run.tokens[0].begin() + static_cast<long>(a.tokens[0].size())));
  // Too many stop strings are refused at Submit.
  EXPECT_EQ((*s)->Submit({.prompt = {1},
                          .max_tokens = 1,
                          .stop = std::vector<std::string>(kMaxStopStrings + 1, "x")},
                         a.Callbacks(1))
                .status()
                .code(),
            StatusCode::kInvalidArgument);

  // n = 3 seeded samples: reproducible, and each sample its own stream.
  Collected b1, b2;
  SamplingParams sp{.temperature = 1.5f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 42};
  ASSERT_TRUE((*s)->Submit({.prompt = Prompt(2, 6, n_vocab_),
                            .max_tokens = 8,
                            .n = 3,
                            .sampling = sp,
                            .stop_at_eog = false},
                           b1.Callbacks(3))
                  .ok());
  ASSERT_TRUE(b1.Wait());
  ASSERT_TRUE((*s)->Submit({.prompt = Prompt(2, 6, n_vocab_),
                            .max_tokens = 8,
                            .n = 3,
                            .sampling = sp,
                            .stop_at_eog = false},
                           b2.Callbacks(3))
                  .ok());
  ASSERT_TRUE(b2.Wait());
  EXPECT_EQ(b1.tokens, b2.tokens);
  for (const auto& t : b1.tokens) EXPECT_EQ(t.size(), 8u);
  EXPECT_EQ(b1.result.completion_tokens, 24);
  EXPECT_NE(b1.tokens[0], b1.tokens[1]);

  // Logprobs.
  Collected c;
  GenerationRequest lr{
      .prompt = Prompt(3, 4, n_vocab_), .max_tokens = 2, .stop_at_eog = false, .top_logprobs = 3};
  lr.sampling.temperature = 0;
  std::vector<TokenEvent> events;
  GenerationCallbacks cb = c.Callbacks(1);
  auto inner = cb.on_token;
  cb.on_token = [&](const TokenEvent& ev) {
    events.push_back(ev);
    inner(ev);
  };
  ASSERT_TRUE((*s)->Submit(lr, cb).ok());
  ASSERT_TRUE(c.Wait());
  ASSERT_EQ(events.size(), 2u);
  for (const TokenEvent& ev : events) {
    ASSERT_EQ(ev.top.size(), 3u);
    EXPECT_EQ(ev.top[0].id, ev.token);  // greedy: the chosen token is the most likely
    EXPECT_FLOAT_EQ(ev.top[0].logprob, ev.logprob);
    EXPECT_LE(ev.logprob, 0.0f);
  }

  // Cancel a long request mid-way (from its own token callback, once its id is known):
  // on_done follows with kCancelled and the blocks come back.
  Collected d;
  std::atomic<RequestId> d_id{0};
  GenerationCallbacks dcb = d.Callbacks(1);
  auto d_inner = dcb.on_token;
  int d_seen = 0;
  Engine* sp_engine = s->get();
  dcb.on_token = [&](const TokenEvent& ev) {
    if (++d_seen == 3) {
      while (d_id.load() == 0) std::this_thread::yield();  // Submit has returned by now or soon
      sp_engine->Cancel(d_id.load());
    }
    d_inner(ev);
  };
  auto id = (*s)->Submit(
      {.prompt = Prompt(4, 10, n_vocab_), .max_tokens = 50, .stop_at_eog = false}, dcb);
  ASSERT_TRUE(id.ok());
  d_id.store(*id);
  ASSERT_TRUE(d.Wait());
  EXPECT_EQ(d.result.samples[0].finish, FinishReason::kCancelled);
  EXPECT_LT(d.tokens[0].size(), 50u);
  WaitForIdle(**s);
  EXPECT_EQ((*s)->stats().kv_blocks_used, 0);
}

// Samples of one step are drawn in parallel on the engine's pool: seeded samples, their logprobs
// and their order must not depend on how many threads there are.
TEST(EngineThreads, SeededSamplesAndLogprobsDoNotDependOnThreads) {
  struct Run {
    std::vector<std::vector<int32_t>> tokens;
    // Per request and sample, in token order. (Not in callback order across requests: when a
    // request is admitted relative to the others depends on how fast the step thread runs.)
    std::map<std::pair<int, int32_t>, std::vector<float>> logprobs;
  };
  auto run = [](int threads) {
    auto e = ModelRunner::Load(kDir + "tiny-llama-f32.gguf", {.n_threads = threads, .n_ctx = 64});
    EXPECT_TRUE(e.ok());
    auto s = Engine::Create(e->get(), {.block_size = 4, .max_batch_tokens = 32, .max_seqs = 16});
    EXPECT_TRUE(s.ok());
    const int64_t n_vocab = (*e)->config().n_vocab;
    Run out;
    std::vector<Collected> col(3);
    std::mutex mu;
    for (int r = 0; r < 3; ++r) {
      SamplingParams sp{
          .temperature = 1.3f, .top_k = 0, .top_p = 0.9f, .min_p = 0.0f, .seed = 7u + r};
      GenerationCallbacks cb = col[r].Callbacks(4);
      auto inner = cb.on_token;
      cb.on_token = [&, inner, r](const TokenEvent& ev) {
        {
          std::lock_guard<std::mutex> lock(mu);
          out.logprobs[{r, ev.sample_index}].push_back(ev.logprob);
        }
        inner(ev);
      };
      EXPECT_TRUE((*s)->Submit({.prompt = Prompt(10 + r, 5, n_vocab),
                                .max_tokens = 6,
                                .n = 4,
                                .sampling = sp,
                                .stop_at_eog = false,
                                .top_logprobs = 2},
                               cb)
                      .ok());
    }
    for (Collected& c : col) {
      EXPECT_TRUE(c.Wait());
      for (const auto& t : c.tokens) out.tokens.push_back(t);
    }
    (*s)->Shutdown(std::chrono::milliseconds(0));
    return out;
  };
  const Run one = run(1), two = run(2);
  EXPECT_EQ(one.tokens, two.tokens);
  ASSERT_EQ(one.logprobs.size(), 3u * 4u);  // 3 requests x 4 samples
  for (const auto& [key, lps] : one.logprobs) EXPECT_EQ(lps.size(), 6u);
  EXPECT_EQ(one.logprobs, two.logprobs);
}

// Constrained decoding: whatever the sampler would pick, every sample's text stays inside the
// grammar's language; a sample ends (finish kStop) once the grammar can only end; n > 1 samples
// each keep their own matcher.
TEST_F(EngineControl, GrammarConstrainsEverySample) {
  auto s = Engine::Create(eng_.get(), {.block_size = 4, .max_batch_tokens = 32, .max_seqs = 8});
  ASSERT_TRUE(s.ok());
  Result<std::shared_ptr<const grammar::Grammar>> g =
      grammar::Grammar::Compile("root ::= [a-c]+ \"!\"");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const std::regex whole("[a-c]+!"), prefix("[a-c]*");
  int ended = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Collected c;
    SamplingParams sp{.temperature = 1.5f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = seed};
    ASSERT_TRUE((*s)->Submit({.prompt = Prompt(static_cast<int>(seed), 5, n_vocab_),
                              .max_tokens = 16,
                              .n = 3,
                              .sampling = sp,
                              .top_logprobs = 2,
                              .grammar = *g},
                             c.Callbacks(3))
                    .ok());
    ASSERT_TRUE(c.Wait());
    ASSERT_TRUE(c.result.status.ok()) << c.result.status.ToString();
    for (int i = 0; i < 3; ++i) {
      const std::string& text = c.text[static_cast<size_t>(i)];
      if (c.result.samples[static_cast<size_t>(i)].finish == FinishReason::kStop) {
        EXPECT_TRUE(std::regex_match(text, whole)) << text;
        ++ended;
      } else {
        EXPECT_EQ(c.result.samples[static_cast<size_t>(i)].finish, FinishReason::kLength);
        EXPECT_TRUE(std::regex_match(text, prefix)) << text;
      }
    }
  }
  EXPECT_GT(ended, 0);  // some samples reach "!" and end there
  // Without a grammar the same requests leave the alphabet (the constraint is what holds them).
  Collected free;
  SamplingParams sp{.temperature = 1.5f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 1};
  ASSERT_TRUE(
      (*s)->Submit({.prompt = Prompt(1, 5, n_vocab_), .max_tokens = 16, .n = 3, .sampling = sp},
                   free.Callbacks(3))
          .ok());
  ASSERT_TRUE(free.Wait());
  bool outside = false;
  for (const std::string& t : free.text) outside |= !std::regex_match(t, prefix);
  EXPECT_TRUE(outside);
  WaitForIdle(**s);
  EXPECT_EQ((*s)->stats().kv_blocks_used, 0);
}

// Byte tokens (3..258) out of the way, so every sampled token is whole text.
std::vector<std::pair<int32_t, float>> NoByteTokens() {
  std::vector<std::pair<int32_t, float>> bias;
  for (int32_t t = 3; t <= 258; ++t) bias.push_back({t, -100.0f});
  return bias;
}

// Lazy grammar, word trigger: each sample runs free (the same tokens as without the grammar)
// until its text contains the word, then the grammar holds the rest from the word's first byte.
// Tokens that carry the word with bytes the grammar refuses are sampled again.
TEST_F(EngineControl, LazyGrammarStartsAtTheWordTrigger) {
  auto s = Engine::Create(eng_.get(), {.block_size = 4, .max_batch_tokens = 32, .max_seqs = 8});
  ASSERT_TRUE(s.ok());
  Result<std::shared_ptr<const grammar::Grammar>> g =
      grammar::Grammar::Compile("root ::= \"e\" [a-c]* \"!\"");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const std::regex rest("e[a-c]*!?");
  int fired = 0, free_only = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    SamplingParams sp{.temperature = 1.5f,
                      .top_k = 0,
                      .top_p = 1.0f,
                      .min_p = 0.0f,
                      .seed = seed,
                      .logit_bias = NoByteTokens()};
    Collected free, lazy;
    GenerationRequest req{.prompt = Prompt(static_cast<int>(seed), 5, n_vocab_),
                          .max_tokens = 12,
                          .n = 3,
                          .sampling = sp};
    ASSERT_TRUE((*s)->Submit(req, free.Callbacks(3)).ok());
    req.grammar = *g;
    req.grammar_triggers.words = {"e"};
    ASSERT_TRUE((*s)->Submit(req, lazy.Callbacks(3)).ok());
    ASSERT_TRUE(free.Wait() && lazy.Wait());
    ASSERT_TRUE(lazy.result.status.ok()) << lazy.result.status.ToString();
    for (size_t i = 0; i < 3; ++i) {
      const std::string& f = free.text[i];
      const std::string& l = lazy.text[i];
      const size_t pf = f.find('e'), pl = l.find('e');
      if (pf == std::string::npos) {  // never fired: exactly the free sample
        EXPECT_EQ(l, f);
        ++free_only;
        continue;
      }
      const size_t common = std::min(pf, pl);
      EXPECT_EQ(l.substr(0, common), f.substr(0, common)) << l << " vs " << f;
      if (pl == std::string::npos) continue;  // the only firing tokens were refused
      ++fired;
      EXPECT_TRUE(std::regex_match(l.substr(pl), rest)) << l;
    }
  }
  EXPECT_GT(fired, 0);
  WaitForIdle(**s);
  EXPECT_EQ((*s)->stats().kv_blocks_used, 0);
}

// Lazy grammar, token trigger: a control token fires it, the grammar reads it as <[id]> and the
// output renders it (render_tokens); speculation gives the same tokens.
TEST_F(EngineControl, LazyGrammarTokenTriggerWithRenderedMarkerAndSpeculation) {
  Result<std::shared_ptr<const grammar::Grammar>> g =
      grammar::Grammar::Compile("root ::= <[1]> [a-c ]* \"!\"");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const std::regex rest("<s>[a-c ]*!?");
  std::vector<std::vector<std::string>> texts;
  for (SpecMethod spec : {SpecMethod::kNone, SpecMethod::kNgram}) {
    auto s = Engine::Create(eng_.get(), {.block_size = 4,
                                         .max_batch_tokens = 32,
                                         .max_seqs = 8,
                                         .spec = spec,
                                         .spec_max_tokens = 4,
                                         .spec_adaptive = false});
    ASSERT_TRUE(s.ok());
    std::vector<std::string>& out = texts.emplace_back();
    int fired = 0;
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      SamplingParams sp{.temperature = 1.0f,
                        .top_k = 0,
                        .top_p = 1.0f,
                        .min_p = 0.0f,
                        .seed = seed,
                        .logit_bias = NoByteTokens()};
      sp.logit_bias.push_back({1, 2.0f});  // <s> now and then
      Collected c;
      GenerationRequest req{.prompt = Prompt(static_cast<int>(seed), 5, n_vocab_),
                            .max_tokens = 16,
                            .sampling = sp,
                            .grammar = *g,
                            .render_tokens = {1}};
      req.grammar_triggers.tokens = {1};
      ASSERT_TRUE((*s)->Submit(req, c.Callbacks(1)).ok());
      ASSERT_TRUE(c.Wait());
      ASSERT_TRUE(c.result.status.ok()) << c.result.status.ToString();
      const std::string& t = c.text[0];
      out.push_back(t);
      const size_t p = t.find("<s>");
      if (p == std::string::npos) continue;
      ++fired;
      EXPECT_TRUE(std::regex_match(t.substr(p), rest)) << t;
    }
    EXPECT_GT(fired, 0);
    WaitForIdle(**s);
    EXPECT_EQ((*s)->stats().kv_blocks_used, 0);
  }
  EXPECT_EQ(texts[0], texts[1]);
}

// Grammar masks computed during the forward pass (EngineOptions::grammar_overlap) or after it,
// with or without speculative decoding: the same tokens, log-probabilities, texts and finish
// reasons, for greedy and seeded requests with n > 1 beside an unconstrained one, batched.
TEST_F(EngineControl, GrammarMasksDuringTheForwardPassChangeNoOutput) {
  Result<std::shared_ptr<const grammar::Grammar>> g =
      grammar::Grammar::Compile("root ::= (\"<\" [a-d]{1,3} \">\" [^<>!]* \" \")+ \"!\"");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    SamplingParams sp{.temperature = 0.0f};
    if (i % 2 == 1) {
      sp = {.temperature = 1.3f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 40u + i};
    }
    reqs.push_back({.prompt = Prompt(i, 4 + i, n_vocab_),
                    .max_tokens = 24,
                    .n = 1 + i % 3,
                    .sampling = sp,
                    .top_logprobs = 1,
                    .grammar = i == 4 ? nullptr : *g});
  }
  struct Outcome {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<std::string> text;
    std::vector<FinishReason> finish;
    bool operator==(const Outcome&) const = default;
  };
  auto run = [&](bool overlap, bool spec) {
    EngineOptions options{.block_size = 4, .max_batch_tokens = 64, .max_seqs = 16};
    options.grammar_overlap = overlap;
    if (spec) {
      options.spec = SpecMethod::kNgram;
      options.spec_adaptive = false;
    }
    auto s = Engine::Create(eng_.get(), options);
    EXPECT_TRUE(s.ok());
    std::vector<Collected> col(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_TRUE((*s)->Submit(reqs[i], col[i].Callbacks(reqs[i].n)).ok());
    }
    std::vector<Outcome> outs;
    for (Collected& c : col) {
      EXPECT_TRUE(c.Wait());
      EXPECT_TRUE(c.result.status.ok()) << c.result.status.ToString();
      Outcome o{.tokens = c.tokens, .text = c.text};
      for (const SampleResult& r : c.result.samples) o.finish.push_back(r.finish);
      outs.push_back(std::move(o));
    }
    (*s)->Shutdown(std::chrono::milliseconds(0));
    EXPECT_EQ((*s)->stats().kv_blocks_used, 0);
    return outs;
  };
  const std::vector<Outcome> after = run(false, false);
  const std::regex prefix("(<[a-d]{1,3}>[^<>!]* )*(<[a-d]{0,3}(>[^<>!]*)?)?!?");
  size_t constrained_tokens = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (reqs[i].grammar == nullptr) continue;
    for (size_t k = 0; k < after[i].text.size(); ++k) {
      EXPECT_TRUE(std::regex_match(after[i].text[k], prefix)) << after[i].text[k];
      constrained_tokens += after[i].tokens[k].size();
    }
  }
  EXPECT_GT(constrained_tokens, 100u);  // the grammar was followed for many tokens
  for (bool spec : {false, true}) {
    const std::vector<Outcome> during = run(true, spec), plain = run(false, spec);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(during[i], after[i]) << "request " << i << (spec ? " with speculation" : "");
      EXPECT_EQ(plain[i], after[i]) << "request " << i << (spec ? " with speculation" : "");
    }
  }
}

// Requests cancelled from another thread at any moment, masks possibly being computed for them
// (an all-cancelled step aborts its forward pass): each ends once, as cancelled or finished, and
// every KV block is freed.
TEST_F(EngineControl, CancellingConstrainedRequestsMidStepIsSafe) {
  Result<std::shared_ptr<const grammar::Grammar>> g =
      grammar::Grammar::Compile("root ::= \"\\\"\" [^\"]{0,40} \"\\\"\"");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto s = Engine::Create(eng_.get(), {.block_size = 4, .max_batch_tokens = 64, .max_seqs = 16});
  ASSERT_TRUE(s.ok());
  for (int round = 0; round < 20; ++round) {
    std::vector<Collected> col(8);
    std::vector<RequestId> ids;
    for (int i = 0; i < 8; ++i) {
      SamplingParams sp{.temperature = 1.0f,
                        .top_k = 0,
                        .top_p = 1.0f,
                        .min_p = 0.0f,
                        .seed = static_cast<uint64_t>(round * 8 + i)};
      Result<RequestId> id = (*s)->Submit({.prompt = Prompt(i, 6, n_vocab_),
                                           .max_tokens = 40,
                                           .n = 1 + i % 2,
                                           .sampling = sp,
                                           .grammar = *g},
                                          col[i].Callbacks(1 + i % 2));
      ASSERT_TRUE(id.ok());
      ids.push_back(*id);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50 * round));
    for (RequestId id : ids) (*s)->Cancel(id);
    for (Collected& c : col) {
      ASSERT_TRUE(c.Wait());
      for (const SampleResult& r : c.result.samples) {
        EXPECT_NE(r.finish, FinishReason::kError) << c.result.status.ToString();
      }
    }
  }
  WaitForIdle(**s);
  EXPECT_EQ((*s)->stats().kv_blocks_used, 0);
}

TEST_F(EngineControl, PrefixCachingCanBeTurnedOff) {
  for (bool caching : {true, false}) {
    auto s = Engine::Create(
        eng_.get(),
        {.block_size = 4, .max_batch_tokens = 64, .max_seqs = 4, .prefix_caching = caching});
    ASSERT_TRUE(s.ok());
    // The same 21-token prompt twice, one after the other: the second finds 5 full blocks cached.
    for (int turn = 0; turn < 2; ++turn) {
      Collected c;
      ASSERT_TRUE(
          (*s)->Submit({.prompt = Prompt(9, 21, n_vocab_), .max_tokens = 2, .stop_at_eog = false},
                       c.Callbacks(1))
              .ok());
      ASSERT_TRUE(c.Wait());
      EXPECT_EQ(c.result.cached_prompt_tokens, turn == 1 && caching ? 20 : 0);
      EXPECT_EQ(c.result.prompt_tokens, 21);
    }
    WaitForIdle(**s);
    EXPECT_EQ((*s)->stats().prefix_hit_tokens, caching ? 20 : 0) << "caching " << caching;
  }
}

TEST_F(EngineControl, RejectsBadRequestsAndOverload) {
  auto s = Engine::Create(eng_.get(),
                          {.block_size = 4, .max_batch_tokens = 8, .max_seqs = 1, .max_queue = 2});
  ASSERT_TRUE(s.ok());
  Collected x;
  EXPECT_EQ((*s)->Submit({.prompt = {}, .max_tokens = 4}, x.Callbacks(1)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*s)->Submit({.prompt = Prompt(0, 60, n_vocab_), .max_tokens = 10}, x.Callbacks(1))
                .status()
                .code(),
            StatusCode::kInvalidArgument);  // 70 > context of 64
  EXPECT_EQ(
      (*s)->Submit({.prompt = {static_cast<int32_t>(n_vocab_)}, .max_tokens = 1}, x.Callbacks(1))
          .status()
          .code(),
      StatusCode::kInvalidArgument);
  // Submit is where prompt ids are checked (the scheduler treats them as opaque).
  EXPECT_EQ((*s)->Submit({.prompt = {1, -2}, .max_tokens = 1}, x.Callbacks(1)).status().code(),
            StatusCode::kInvalidArgument);
  GenerationRequest bad_temp{.prompt = {1}, .max_tokens = 1};
  bad_temp.sampling.temperature = -1;
  EXPECT_FALSE((*s)->Submit(bad_temp, x.Callbacks(1)).ok());
  // Rendered tokens and trigger tokens must be in the vocabulary.
  Result<RequestId> bad_render = (*s)->Submit(
      {.prompt = {1}, .max_tokens = 1, .render_tokens = {static_cast<int32_t>(n_vocab_)}},
      x.Callbacks(1));
  ASSERT_FALSE(bad_render.ok());
  EXPECT_EQ(bad_render.status().message(),
            "render_tokens: token id " + std::to_string(n_vocab_) + " is outside the vocabulary");
  GenerationRequest bad_trigger{.prompt = {1}, .max_tokens = 1};
  bad_trigger.grammar_triggers.tokens = {-1};
  EXPECT_EQ((*s)->Submit(bad_trigger, x.Callbacks(1)).status().code(),
            StatusCode::kInvalidArgument);

  // One runs, two wait; the next is refused until the queue drains.
  std::vector<Collected> c(8);
  int accepted = 0, refused = 0;
  for (auto& ci : c) {
    auto r =
        (*s)->Submit({.prompt = Prompt(5, 8, n_vocab_), .max_tokens = 40, .stop_at_eog = false},
                     ci.Callbacks(1));
    if (r.ok()) {
      ++accepted;
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
      ++refused;
      ci.done = true;
    }
  }
  EXPECT_GE(accepted, 2);
  EXPECT_GE(refused, 1);
  for (auto& ci : c) ASSERT_TRUE(ci.Wait());

  // Shutdown with no grace cancels what is left; later submissions are refused.
  Collected y;
  ASSERT_TRUE(
      (*s)->Submit({.prompt = Prompt(6, 8, n_vocab_), .max_tokens = 50, .stop_at_eog = false},
                   y.Callbacks(1))
          .ok());
  (*s)->Shutdown(std::chrono::milliseconds(0));
  ASSERT_TRUE(y.Wait(std::chrono::seconds(1)));
  EXPECT_EQ((*s)->Submit({.prompt = {1}, .max_tokens = 1}, x.Callbacks(1)).status().code(),
            StatusCode::kUnavailable);
}

}  // namespace
}  // namespace gannet::engine
