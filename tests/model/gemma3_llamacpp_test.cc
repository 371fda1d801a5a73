// The engine on the real default model (Gemma 3 270M Q4_K_M) against llama.cpp's own results,
// recorded by tools/llamacpp_golden.py in tests/fixtures/golden/gemma3_270m.json:
//  - the prompt tokenizes to the same ids;
//  - along llama.cpp's greedy path (teacher-forced), our greedy choice equals llama.cpp's at 90%
//    of all steps and at 98% of the steps where llama.cpp's choice was clear (margin >= kClear);
//  - at every recorded position the argmax is the same where llama.cpp's top two are kClear
//    apart, and our logits at llama.cpp's top-20 ids have cosine similarity >= 0.999 with its
//    values at 90% of positions (>= 0.95 at all).
//
// Why close calls are exempt: this small quantized model is very sensitive to rounding. Any two
// implementations that round differently (8-bit activation blocks, summation order, f16 steps)
// differ by up to ~0.9 in a logit of ~20 here; exact f32 arithmetic (weights dequantized, no
// activation rounding) differs from llama.cpp just as much: it gives identical 32-token
// continuations for only 9 of the 26 prompts and a lowest top-20 cosine of 0.964. A greedy path
// through a near tie is a coin toss for every implementation; everything before it is not.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/model_runner.h"

namespace gannet::engine {
namespace {

// Logit gap from which llama.cpp's own choice counts as clear (see above). Between two
// implementations that both round activations to 8 bits, a top-2 gap on this model moves by up to
// ~1.5 logits (measured: the same engine evaluating the same sequence in batches of 1, 10, 19 and
// 23 tokens moves one gap from -0.6 to +1.6, while exact f32 arithmetic moves it by 0.002).
constexpr double kClear = 2.0;

int32_t Argmax(std::span<const float> v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

class Gemma3LlamaCppTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* model = std::getenv("GANNET_TEST_MODEL");
    ASSERT_NE(model, nullptr) << "GANNET_TEST_MODEL is not set (run through ctest)";
    Result<std::unique_ptr<ModelRunner>> e =
        ModelRunner::Load(model, {.n_threads = 2, .n_ctx = 2048});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value().release();
    std::ifstream f(std::string(GANNET_FIXTURES_DIR) + "/golden/gemma3_270m.json");
    ASSERT_TRUE(f.good());
    golden_ = new nlohmann::json(nlohmann::json::parse(f));
  }
  static void TearDownTestSuite() {
    delete engine_;
    delete golden_;
  }
  static ModelRunner* engine_;
  static nlohmann::json* golden_;
};
ModelRunner* Gemma3LlamaCppTest::engine_ = nullptr;
nlohmann::json* Gemma3LlamaCppTest::golden_ = nullptr;

TEST_F(Gemma3LlamaCppTest, PromptTokensMatch) {
  for (const auto& c : (*golden_)["cases"]) {
    std::vector<int32_t> want = c["prompt_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got =
        engine_->tokenizer().Encode(c["prompt"].get<std::string>(), true, true);
    EXPECT_EQ(got, want) << c["name"];
  }
}

TEST_F(Gemma3LlamaCppTest, GreedyChoicesMatch) {
  // Teacher-forced along llama.cpp's greedy path, so that one near tie does not decide the rest
  // of a prompt: at every step our argmax must be llama.cpp's token wherever llama.cpp's own
  // choice was clear (top-1 minus top-2 >= kClear), for at least 98% of such steps.
  const auto& cases = (*golden_)["cases"];
  int identical = 0, clear_steps = 0, clear_agree = 0, steps = 0, agree = 0;
  for (const auto& c : cases) {
    std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> want = c["greedy"].get<std::vector<int32_t>>();
    std::vector<double> margins = c["margins"].get<std::vector<double>>();
    Result<std::span<const float>> l = engine_->Evaluate(prompt, 0, false);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    int64_t n_past = static_cast<int64_t>(prompt.size());
    bool all_same = true;
    for (size_t i = 0; i < want.size(); ++i) {
      const int32_t t = Argmax(*l);
      ++steps;
      agree += t == want[i];
      all_same = all_same && t == want[i];
      if (margins[i] >= kClear) {
        ++clear_steps;
        clear_agree += t == want[i];
        if (t != want[i]) {
          std::printf("%s step %zu: %d where llama.cpp chose %d by a margin of %.3f\n",
                      c["name"].get<std::string>().c_str(), i, t, want[i], margins[i]);
        }
      }
      if (i + 1 == want.size()) break;
      const int32_t one[1] = {want[i]};
      l = engine_->Evaluate(one, n_past++, false);
      ASSERT_TRUE(l.ok()) << l.status().ToString();
    }
    identical += all_same;
  }
  std::printf(
      "argmax equal to llama.cpp's: %d of %d steps; %d of %d steps where llama.cpp's margin >= "
      "%.1f; "
      "%d of %zu prompts identical for all 32 tokens\n",
      agree, steps, clear_agree, clear_steps, kClear, identical, cases.size());
  EXPECT_GE(clear_agree * 100, clear_steps * 98);
  EXPECT_GE(agree * 100, steps * 90);
}

TEST_F(Gemma3LlamaCppTest, LogitsMatchAtRecordedPositions) {
  double min_cos = 1.0;
  int checked = 0, above = 0;
  for (const auto& c : (*golden_)["cases"]) {
    std::vector<int32_t> seq = c["prompt_ids"].get<std::vector<int32_t>>();
    const size_t n_prompt = seq.size();
    std::vector<int32_t> greedy = c["greedy"].get<std::vector<int32_t>>();
    seq.insert(seq.end(), greedy.begin(), greedy.end());
    for (const auto& top : c["top"]) {
      const size_t n_gen = top["n_generated"].get<size_t>();
      // Logits after the prompt and n_gen generated tokens (llama.cpp's greedy path) were fed.
      std::span<const int32_t> feed(seq.data(), n_prompt + n_gen);
      Result<std::span<const float>> l = engine_->Evaluate(feed, 0, false);
      ASSERT_TRUE(l.ok()) << l.status().ToString();
      std::vector<int32_t> ids = top["ids"].get<std::vector<int32_t>>();
      std::vector<double> want = top["logits"].get<std::vector<double>>();
      double dot = 0, nw = 0, ng = 0;
      for (size_t i = 0; i < ids.size(); ++i) {
        const double g = (*l)[ids[i]];
        dot += g * want[i];
        nw += want[i] * want[i];
        ng += g * g;
      }
      const double cos = dot / std::sqrt(nw * ng);
      min_cos = std::min(min_cos, cos);
      ++checked;
      if (cos >= 0.999) ++above;
      EXPECT_GE(cos, 0.95) << c["name"] << " after " << n_gen << " generated tokens";
      if (cos < 0.999)
        std::printf("%s after %zu generated tokens: top-20 cosine %.5f\n",
                    c["name"].get<std::string>().c_str(), n_gen, cos);
      if (want[0] - want[1] >= kClear) {
        EXPECT_EQ(Argmax(*l), ids[0]) << c["name"] << " after " << n_gen << " generated tokens";
      }
    }
  }
  EXPECT_GE(above * 10, checked * 9)
      << above << " of " << checked << " positions with cosine >= 0.999";
  std::printf("positions with top-20 cosine >= 0.999: %d of %d\n", above, checked);
  std::printf("checked %d positions; lowest cosine similarity of top-20 logits: %.6f\n", checked,
              min_cos);
}

// `gannet run` generates through the Engine (paged KV, scheduler, sampler, output processor). Its
// greedy tokens on every agreement prompt must be exactly those of the plain forward pass, one
// token at a time on the runner's own contiguous sequence (what `gannet run` computed before it
// went through the Engine), alone (as `gannet run` submits) and with all prompts batched together
// (as `gannet serve` runs them).
TEST_F(Gemma3LlamaCppTest, GreedyThroughTheEngineEqualsThePlainForwardPass) {
  const auto& cases = (*golden_)["cases"];
  std::vector<std::vector<int32_t>> plain;
  for (const auto& c : cases) {
    std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const size_t n = c["greedy"].size();
    std::vector<int32_t> out;
    Result<std::span<const float>> l = engine_->Evaluate(prompt, 0, false);
    int64_t n_past = static_cast<int64_t>(prompt.size());
    while (true) {
      ASSERT_TRUE(l.ok()) << l.status().ToString();
      out.push_back(Argmax(*l));
      if (out.size() == n) break;
      const int32_t one[1] = {out.back()};
      l = engine_->Evaluate(one, n_past++, false);
    }
    plain.push_back(std::move(out));
  }
  struct Collected {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<int32_t> tokens;
    bool done = false;
  };
  for (const int32_t parallel : {1, 8}) {
    Result<std::unique_ptr<Engine>> e =
        Engine::Create(engine_, {.max_seqs = parallel, .max_queue = 64});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    std::vector<Collected> got(cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
      GenerationRequest r{.prompt = cases[i]["prompt_ids"].get<std::vector<int32_t>>(),
                          .max_tokens = static_cast<int32_t>(plain[i].size()),
                          .stop_at_eog = false};
      r.sampling.temperature = 0;
      Collected* g = &got[i];
      GenerationCallbacks cb{
          .on_token = [g](const TokenEvent& ev) { g->tokens.push_back(ev.token); },
          .on_done =
              [g](const GenerationResult&) {
                std::lock_guard<std::mutex> lock(g->mu);
                g->done = true;
                g->cv.notify_one();
              }};
      ASSERT_TRUE((*e)->Submit(std::move(r), std::move(cb)).ok());
      if (parallel == 1) {  // one at a time, as `gannet run` does
        std::unique_lock<std::mutex> lock(g->mu);
        g->cv.wait(lock, [g] { return g->done; });
      }
    }
    int same_as_llamacpp = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      std::unique_lock<std::mutex> lock(got[i].mu);
      got[i].cv.wait(lock, [&] { return got[i].done; });
      EXPECT_EQ(got[i].tokens, plain[i])
          << cases[i]["name"] << " with " << parallel << " sequences per step";
      same_as_llamacpp += got[i].tokens == cases[i]["greedy"].get<std::vector<int32_t>>();
    }
    std::printf(
        "through the Engine (%d per step): %zu prompts; %d with all tokens equal to llama.cpp's "
        "greedy\n",
        parallel, cases.size(), same_as_llamacpp);
  }
}

}  // namespace
}  // namespace gannet::engine
