// Speculative decoding with a draft model on real files: the default model as its own draft
// accepts every greedy chain token and gives the output of no speculation; the
// Llama-3.2-1B-shaped Q8_0 file as the draft of the Q4_K_M one (same vocabulary, same random
// weights quantized two ways; made by tools/make_llama1b_model.py, skipped when absent) leaves
// the output unchanged; a draft with another vocabulary is refused naming both files.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "engine/draft_model.h"
#include "engine/engine.h"

namespace gannet::engine {
namespace {

const std::string kModels = std::string(GANNET_SOURCE_DIR) + "/models/";
const std::string kLlamaQ4 = kModels + "llama-3.2-1b-shape-q4_k_m.gguf";
const std::string kLlamaQ8 = kModels + "llama-3.2-1b-shape-q8_0.gguf";

std::string DefaultModel() {
  const char* model = std::getenv("GANNET_TEST_MODEL");
  return model != nullptr ? model : kModels + "gemma-3-270m-q4_k_m.gguf";
}

// One greedy request on a fresh engine: its tokens and the engine's stats.
std::vector<int32_t> Generate(ModelRunner* runner, const EngineOptions& options,
                              const std::vector<int32_t>& prompt, int32_t n, EngineStats* stats) {
  auto eng = Engine::Create(runner, options);
  EXPECT_TRUE(eng.ok()) << eng.status().ToString();
  if (!eng.ok()) return {};
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::vector<int32_t> tokens;
  auto id = (*eng)->Submit(
      {.prompt = prompt, .max_tokens = n, .sampling = {.temperature = 0.0f}, .stop_at_eog = false},
      {.on_token = [&](const TokenEvent& ev) { tokens.push_back(ev.token); },
       .on_done =
           [&](const GenerationResult& r) {
             EXPECT_TRUE(r.status.ok()) << r.status.ToString();
             std::lock_guard<std::mutex> lock(mu);
             done = true;
             cv.notify_all();
           }});
  EXPECT_TRUE(id.ok());
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::minutes(10), [&] { return done; }));
  }
  (*eng)->Shutdown(std::chrono::milliseconds(0));
  *stats = (*eng)->stats();
  EXPECT_EQ(stats->draft_kv_blocks_used, 0);
  return tokens;
}

TEST(DraftModelOnRealModels, DefaultModelAsItsOwnDraft) {
  auto target = ModelRunner::Load(DefaultModel(), {.n_threads = 2, .n_ctx = 256});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  auto draft = LoadDraftModel(DefaultModel(), **target);
  ASSERT_TRUE(draft.ok()) << draft.status().ToString();
  const std::vector<int32_t> prompt = (*target)->tokenizer().Encode(
      "The three primary colors are", /*add_special=*/true, /*parse_special=*/false);
  EngineOptions base{.max_seqs = 1};
  EngineOptions spec = base;
  spec.spec = SpecMethod::kDraftModel;
  spec.spec_max_tokens = 4;  // a chain of 3 and one alternative
  spec.spec_adaptive = false;
  spec.draft_model = draft->get();
  EngineStats a, b;
  const std::vector<int32_t> plain = Generate(target->get(), base, prompt, 33, &a);
  const std::vector<int32_t> fast = Generate(target->get(), spec, prompt, 33, &b);
  EXPECT_EQ(plain, fast);
  // 32 tokens after the prompt's first: 8 steps of 4 (the chain of 3 accepted every time).
  EXPECT_EQ(b.steps, 1 + 8);
  EXPECT_EQ(b.spec_accepted_tokens, 3 * 8);
  EXPECT_EQ(b.spec_draft_tokens, 7 * 4 + 3);  // the last draft holds only what may still come
}

// Self-speculation (engine/self_draft.h) on the default model: a head of the 32768 most frequent
// tokens after every layer agrees with the model's greedy token most of the time (only a token
// outside the head is missed); an early exit after 12 of 18 layers agrees less. Both leave the
// output unchanged.
TEST(DraftModelOnRealModels, SelfSpeculationKeepsTheOutput) {
  auto target = ModelRunner::Load(DefaultModel(), {.n_threads = 2, .n_ctx = 256});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  const std::vector<int32_t> prompt = (*target)->tokenizer().Encode(
      "Once upon a time, in a small village by the sea, there lived", /*add_special=*/true,
      /*parse_special=*/false);
  EngineOptions base{.max_seqs = 1};
  EngineStats a;
  const std::vector<int32_t> plain = Generate(target->get(), base, prompt, 49, &a);
  for (const int32_t layers : {0, 12}) {
    EngineOptions spec = base;
    spec.spec = SpecMethod::kSelf;
    spec.spec_max_tokens = 4;
    spec.spec_adaptive = false;
    spec.spec_self_layers = layers;
    EngineStats b;
    const std::vector<int32_t> fast = Generate(target->get(), spec, prompt, 49, &b);
    EXPECT_EQ(plain, fast) << "layers " << layers;
    EXPECT_GT(b.spec_accepted_tokens, 0) << "layers " << layers;
    if (layers == 0) {
      // A chain of 4: most of it accepted, so far fewer steps than tokens.
      EXPECT_GE(4 * b.spec_accepted_tokens, 3 * b.spec_draft_tokens);
      EXPECT_LT(b.steps, a.steps / 2);
    }
  }
}

TEST(DraftModelOnRealModels, QuantizedTwinAsDraftKeepsTheOutput) {
  if (!std::filesystem::exists(kLlamaQ4) || !std::filesystem::exists(kLlamaQ8)) {
    GTEST_SKIP() << "no Llama-3.2-1B-shaped files (tools/make_llama1b_model.py makes them)";
  }
  auto target = ModelRunner::Load(kLlamaQ4, {.n_threads = 2, .n_ctx = 128});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  auto draft = LoadDraftModel(kLlamaQ8, **target);
  ASSERT_TRUE(draft.ok()) << draft.status().ToString();
  const std::vector<int32_t> prompt = (*target)->tokenizer().Encode(
      "Speculative decoding drafts tokens", /*add_special=*/true, /*parse_special=*/false);
  EngineOptions base{.max_seqs = 1};
  EngineOptions spec = base;
  spec.spec = SpecMethod::kDraftModel;
  spec.spec_adaptive = false;
  spec.draft_model = draft->get();
  EngineStats a, b;
  const std::vector<int32_t> plain = Generate(target->get(), base, prompt, 16, &a);
  const std::vector<int32_t> fast = Generate(target->get(), spec, prompt, 16, &b);
  EXPECT_EQ(plain, fast);
  EXPECT_GT(b.spec_draft_tokens, 0);
  // Another vocabulary (Gemma 3's) is refused, naming both files.
  auto other = LoadDraftModel(DefaultModel(), **target);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("llama-3.2-1b-shape-q4_k_m.gguf"), std::string::npos);
  EXPECT_NE(
      other.status().message().find(std::filesystem::path(DefaultModel()).filename().string()),
      std::string::npos)
      << other.status().ToString();
}

}  // namespace
}  // namespace gannet::engine
