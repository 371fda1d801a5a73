// The engine against the independent numpy reference (tools/numpy_reference.py) on tiny
// random-weight GGUFs written by tools/make_tiny_models.py: logits at every position and greedy
// continuations, for Llama-, Qwen2- and Gemma-3-shaped models in F32 and mixed quantized types.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/model_runner.h"

namespace gannet::engine {
namespace {

const std::string kDir = std::string(GANNET_FIXTURES_DIR) + "/tiny/";

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << "cannot read " << path;
  return nlohmann::json::parse(f);
}

int32_t Argmax(std::span<const float> v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

class TinyModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyModelTest, MatchesNumpyReference) {
  const std::string name = GetParam();
  nlohmann::json exp = ReadJson(kDir + name + ".expected.json");
  const double rtol = exp["tolerance"]["rtol"], atol = exp["tolerance"]["atol"];
  for (int threads : {1, 2}) {
    Result<std::unique_ptr<ModelRunner>> eng =
        ModelRunner::Load(kDir + name + ".gguf", {.n_threads = threads, .n_ctx = 64});
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    const int64_t n_vocab = (*eng)->config().n_vocab;
    ASSERT_EQ(n_vocab, exp["n_vocab"].get<int64_t>());

    for (const auto& c : exp["cases"]) {
      std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
      Result<std::span<const float>> logits = (*eng)->Evaluate(tokens, 0, /*all_logits=*/true);
      ASSERT_TRUE(logits.ok()) << logits.status().ToString();
      ASSERT_EQ(logits->size(), tokens.size() * n_vocab);
      double worst = 0;
      for (size_t p = 0; p < tokens.size(); ++p) {
        const auto& want = c["logits"][p];
        ASSERT_EQ(static_cast<int64_t>(want.size()), n_vocab);
        for (int64_t v = 0; v < n_vocab; ++v) {
          const double w = want[v].get<double>(), g = (*logits)[p * n_vocab + v];
          const double excess = std::fabs(g - w) - (atol + rtol * std::fabs(w));
          worst = std::max(worst, std::fabs(g - w));
          ASSERT_LE(excess, 0) << name << " threads=" << threads << " case of " << tokens.size()
                               << " tokens, position " << p << ", token " << v << ": got " << g
                               << " want " << w;
        }
      }
      std::printf("%s threads=%d case of %zu tokens: max abs logit difference %.3g\n", name.c_str(),
                  threads, tokens.size(), worst);

      // Greedy continuation, one token at a time through the KV cache.
      std::vector<int32_t> prompt = c["greedy_prompt"].get<std::vector<int32_t>>();
      std::vector<int32_t> want_greedy = c["greedy"].get<std::vector<int32_t>>();
      Result<std::span<const float>> l = (*eng)->Evaluate(prompt, 0, false);
      ASSERT_TRUE(l.ok()) << l.status().ToString();
      // A quantized engine may take the other branch of a near tie: past the first step where
      // the reference's choice is within `atol` of ours, the two paths are different texts and
      // comparing further says nothing. Before that, every step must agree.
      std::vector<int32_t> got;
      int64_t n_past = static_cast<int64_t>(prompt.size());
      for (size_t i = 0; i < want_greedy.size(); ++i) {
        const int32_t t = Argmax(*l);
        if (t != want_greedy[i] && (*l)[t] - (*l)[want_greedy[i]] <= atol) {
          std::printf("%s: greedy step %zu is a near tie (%d: %g vs %d: %g); compared %zu steps\n",
                      name.c_str(), i, t, (*l)[t], want_greedy[i], (*l)[want_greedy[i]], i);
          want_greedy.resize(i);
          break;
        }
        got.push_back(t);
        const int32_t one[1] = {t};
        l = (*eng)->Evaluate(one, n_past++, false);
        ASSERT_TRUE(l.ok()) << l.status().ToString();
      }
      EXPECT_EQ(got, want_greedy) << name << " greedy continuation (threads=" << threads << ")";
    }
  }
}

// The graph fusion passes (graph/fuse.h) change which kernels run, never a bit of the result:
// prompts of several lengths (all logits), then decode steps, with and without fusion.
TEST_P(TinyModelTest, FusedGraphGivesUnfusedLogitsBitForBit) {
  const std::string path = kDir + GetParam() + ".gguf";
  for (int threads : {1, 2}) {
    Result<std::unique_ptr<ModelRunner>> fused =
        ModelRunner::Load(path, {.n_threads = threads, .n_ctx = 64});
    Result<std::unique_ptr<ModelRunner>> plain =
        ModelRunner::Load(path, {.n_threads = threads, .n_ctx = 64, .fuse_graph = false});
    ASSERT_TRUE(fused.ok() && plain.ok());
    const int32_t n_vocab = static_cast<int32_t>((*fused)->config().n_vocab);
    for (int n : {1, 7, 23}) {
      std::vector<int32_t> tokens(n);
      for (int i = 0; i < n; ++i) tokens[i] = (i * 37 + 11) % n_vocab;
      Result<std::span<const float>> a = (*fused)->Evaluate(tokens, 0, true);
      ASSERT_TRUE(a.ok()) << a.status().ToString();
      const std::vector<float> got(a->begin(), a->end());
      Result<std::span<const float>> b = (*plain)->Evaluate(tokens, 0, true);
      ASSERT_TRUE(b.ok()) << b.status().ToString();
      ASSERT_EQ(got.size(), b->size());
      EXPECT_EQ(std::memcmp(got.data(), b->data(), got.size() * sizeof(float)), 0)
          << GetParam() << " threads " << threads << " prompt of " << n;
      for (int step = 0; step < 3; ++step) {
        const int32_t next[1] = {(n * 5 + step * 3) % n_vocab};
        a = (*fused)->Evaluate(next, n + step, false);
        ASSERT_TRUE(a.ok());
        const std::vector<float> one(a->begin(), a->end());
        b = (*plain)->Evaluate(next, n + step, false);
        ASSERT_TRUE(b.ok());
        EXPECT_EQ(std::memcmp(one.data(), b->data(), one.size() * sizeof(float)), 0)
            << GetParam() << " threads " << threads << " decode step " << step;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TinyModelTest,
                         ::testing::Values("tiny-llama-f32", "tiny-llama-q", "tiny-gemma3-f32",
                                           "tiny-gemma3-q", "tiny-qwen2-f32"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s) {
                             if (ch == '-') ch = '_';
                           }
                           return s;
                         });

}  // namespace
}  // namespace gannet::engine
