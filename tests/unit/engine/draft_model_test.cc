// Speculative decoding with a draft model (engine/draft_model.h) on the tiny fixture models: the
// draft's tree is the draft model's greedy chain plus alternatives; with the target itself as the
// draft every chain token is accepted; with a different draft of the same vocabulary the output is
// still exactly the output without speculation (greedy, seeded sampling, n > 1, preemption); the
// draft's K/V is freed with its sequences; a draft with another vocabulary is refused by name.
#include "engine/draft_model.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "spec_outcome.h"

namespace gannet::engine {
namespace {

using spec_test::Collector;
using spec_test::MixedRequests;
using spec_test::Outcome;
using spec_test::Prompt;
using spec_test::RunAll;
using spec_test::SmallPoolOptions;
using spec_test::WithDrafts;

const std::string kDir = std::string(GANNET_FIXTURES_DIR) + "/tiny/";

std::unique_ptr<ModelRunner> Load(const std::string& name) {
  auto r = ModelRunner::Load(kDir + name + ".gguf", {.n_threads = 2, .n_ctx = 128});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

std::unique_ptr<ModelRunner> LoadDraft(const std::string& name, const ModelRunner& target) {
  auto r = LoadDraftModel(kDir + name + ".gguf", target);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

// tiny-llama-f32 as the target, tiny-llama-q as its draft, and a drafter over a 32-block pool.
struct DraftPair {
  std::unique_ptr<ModelRunner> target, draft;
  std::unique_ptr<ModelDrafter> drafter;
};
DraftPair LoadPair() {
  DraftPair p;
  p.target = Load("tiny-llama-f32");
  if (p.target == nullptr) return p;
  p.draft = LoadDraft("tiny-llama-q", *p.target);
  if (p.draft == nullptr) return p;
  auto d = ModelDrafter::Create(p.draft.get(), {.n_blocks = 32, .block_size = 4});
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  if (d.ok()) p.drafter = std::move(*d);
  return p;
}

TEST(DraftModel, ShapeSpendsAQuarterOfTheBudgetOnAlternatives) {
  auto runner = Load("tiny-llama-f32");
  ASSERT_NE(runner, nullptr);
  auto d = ModelDrafter::Create(runner.get(), {.n_blocks = 8, .block_size = 16});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->ShapeFor(1).depth, 1);
  EXPECT_EQ((*d)->ShapeFor(3).branch_levels, 0);
  EXPECT_EQ((*d)->ShapeFor(4).depth, 3);
  EXPECT_EQ((*d)->ShapeFor(4).branch_levels, 1);
  EXPECT_EQ((*d)->ShapeFor(8).depth, 6);
  EXPECT_EQ((*d)->ShapeFor(8).branch_levels, 2);
  EXPECT_EQ((*d)->ShapeFor(63).depth, 61);
  auto chain =
      ModelDrafter::Create(runner.get(), {.n_blocks = 8, .block_size = 16, .branch_width = 1});
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ((*chain)->ShapeFor(8).depth, 8);
  EXPECT_FALSE(ModelDrafter::Create(runner.get(), {.n_blocks = 0}).ok());
}

// The chain is the draft model's greedy continuation (as Evaluate computes it token by token), the
// alternatives are the next likeliest tokens of their level, and the tree is well formed.
TEST(DraftModel, ProposesTheGreedyChainAndAlternatives) {
  DraftPair pair = LoadPair();
  ASSERT_NE(pair.drafter, nullptr);
  ModelRunner* target = pair.target.get();
  ModelRunner* draft = pair.draft.get();
  ModelDrafter* drafter = pair.drafter.get();
  std::vector<int32_t> seq = Prompt(1, 11, target->config().n_vocab);
  const size_t n_vocab = static_cast<size_t>(draft->config().n_vocab);
  auto argmax = [&](std::span<const float> row, int32_t skip) {
    int32_t best = -1;
    for (size_t t = 0; t < n_vocab; ++t) {
      if (static_cast<int32_t>(t) != skip && (best < 0 || row[t] > row[best]))
        best = static_cast<int32_t>(t);
    }
    return best;
  };
  for (int round = 0; round < 3; ++round) {
    Draft d;
    const DraftRequest req{.seq = 7, .tokens = seq, .max_nodes = 8, .draft = &d};
    ASSERT_TRUE(drafter->Propose({&req, 1}).ok());
    ASSERT_EQ(d.tokens.size(), 8u);  // depth 6 and one alternative at levels 0 and 1
    EXPECT_EQ(d.parents, (std::vector<int32_t>{-1, 0, 1, 2, 3, 4, -1, 0}));
    // The reference: the draft model run as one private sequence.
    std::vector<int32_t> ref = seq;
    auto lg = draft->Evaluate(ref, 0, false);
    ASSERT_TRUE(lg.ok());
    std::vector<float> first(lg->begin(), lg->end());
    for (int j = 0; j < 6; ++j) {
      const int32_t next = argmax(*lg, -1);
      EXPECT_EQ(d.tokens[static_cast<size_t>(j)], next) << "round " << round << " level " << j;
      if (j == 0) {
        EXPECT_EQ(d.tokens[6], argmax(first, next));  // the runner-up of level 0
      }
      ref.push_back(next);
      lg = draft->Evaluate({&ref.back(), 1}, static_cast<int64_t>(ref.size()) - 1, false);
      ASSERT_TRUE(lg.ok());
    }
    // The target accepts two chain tokens and then differs: the next proposal reuses their K/V.
    seq.push_back(d.tokens[0]);
    seq.push_back(d.tokens[1]);
    seq.push_back(d.tokens[7]);
  }
  EXPECT_EQ(drafter->num_seqs(), 1);
  EXPECT_GT(drafter->blocks_used(), 0);
  drafter->Release(7);
  EXPECT_EQ(drafter->blocks_used(), 0);
  EXPECT_TRUE(drafter->kv().CheckInvariants().ok());
}

// DraftRequest::model_nodes bounds what the model's passes make (ngram+self's bar for them).
TEST(DraftModel, ModelNodesBoundTheDraft) {
  DraftPair pair = LoadPair();
  ASSERT_NE(pair.drafter, nullptr);
  ModelDrafter* drafter = pair.drafter.get();
  const std::vector<int32_t> seq = Prompt(1, 11, pair.target->config().n_vocab);
  Draft d;
  const DraftRequest three{.seq = 7, .tokens = seq, .max_nodes = 8, .model_nodes = 3, .draft = &d};
  ASSERT_TRUE(drafter->Propose({&three, 1}).ok());
  EXPECT_EQ(d.tokens.size(), 3u);
  EXPECT_EQ(drafter->last_model_tokens(), 3);
  const DraftRequest none{.seq = 8, .tokens = seq, .max_nodes = 8, .model_nodes = 0, .draft = &d};
  ASSERT_TRUE(drafter->Propose({&none, 1}).ok());
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(drafter->last_model_tokens(), 0);
  EXPECT_EQ(drafter->num_seqs(), 1);  // nothing kept for a sequence it made no draft for
}

// The target as its own draft: every greedy chain token is accepted, so a step yields depth + 1
// tokens, and the output is that of no speculation.
TEST(DraftModel, SelfDraftAcceptsTheWholeChain) {
  auto target = Load("tiny-llama-f32");
  ASSERT_NE(target, nullptr);
  auto draft = LoadDraft("tiny-llama-f32", *target);
  ASSERT_NE(draft, nullptr);
  const GenerationRequest req{.prompt = Prompt(2, 10, target->config().n_vocab),
                              .max_tokens = 41,
                              .sampling = {.temperature = 0.0f},
                              .stop_at_eog = false,
                              .top_logprobs = 1};
  EngineOptions base{.block_size = 4, .max_batch_tokens = 64, .max_seqs = 4};
  EngineOptions spec = base;
  spec.spec = SpecMethod::kDraftModel;
  spec.spec_max_tokens = 4;  // depth 3 and one alternative
  spec.spec_adaptive = false;
  spec.draft_model = draft.get();
  EngineStats a, b;
  const std::vector<Outcome> plain = RunAll(target.get(), base, {req}, &a);
  const std::vector<Outcome> fast = RunAll(target.get(), spec, {req}, &b);
  ASSERT_EQ(fast.size(), 1u);
  EXPECT_EQ(plain[0], fast[0]);
  // 40 tokens after the prompt's: 10 steps of 4 (3 chain tokens accepted + the target's own).
  EXPECT_EQ(b.steps, 1 + 10);
  EXPECT_EQ(b.spec_accepted_tokens, 30);
  // 9 drafts of 4 (the alternative is never right) and a last one of 3 (what may still come).
  EXPECT_EQ(b.spec_draft_tokens, 9 * 4 + 3);
}

// Several sequences drafting in the same step share the draft's passes: with the target as its
// own draft every chain token of every sequence is still accepted (a draft cut to fit the step
// keeps its chain's start, so at least 3 of each 4 draft tokens are accepted).
TEST(DraftModel, BatchedSelfDraftsAreAcceptedForEverySequence) {
  auto target = Load("tiny-gemma3-f32");
  ASSERT_NE(target, nullptr);
  auto draft = LoadDraft("tiny-gemma3-f32", *target);
  ASSERT_NE(draft, nullptr);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    reqs.push_back({.prompt = Prompt(i, 6 + 5 * i, target->config().n_vocab),
                    .max_tokens = 30,
                    .sampling = {.temperature = 0.0f},
                    .stop_at_eog = false});
  }
  EngineOptions base{.block_size = 4, .max_batch_tokens = 64, .max_seqs = 4};
  EngineOptions spec = base;
  spec.spec = SpecMethod::kDraftModel;
  spec.spec_max_tokens = 4;
  spec.spec_adaptive = false;
  spec.draft_model = draft.get();
  EngineStats a, b;
  const std::vector<Outcome> plain = RunAll(target.get(), base, reqs, &a);
  const std::vector<Outcome> fast = RunAll(target.get(), spec, reqs, &b);
  ASSERT_EQ(fast.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(plain[i], fast[i]) << "request " << i;
  EXPECT_GT(b.spec_steps, 20);
  EXPECT_GE(4 * b.spec_accepted_tokens, 3 * b.spec_draft_tokens);
}

// A catch-up longer than a step's batch budget is spread over steps without a draft.
TEST(DraftModel, LongCatchUpIsChunked) {
  auto target = Load("tiny-llama-f32");
  ASSERT_NE(target, nullptr);
  auto draft = LoadDraft("tiny-llama-f32", *target);
  ASSERT_NE(draft, nullptr);
  auto drafter =
      ModelDrafter::Create(draft.get(), {.n_blocks = 16, .block_size = 4, .max_batch_tokens = 8});
  ASSERT_TRUE(drafter.ok());
  const std::vector<int32_t> seq = Prompt(5, 20, target->config().n_vocab);
  Draft d;
  const DraftRequest req{.seq = 1, .tokens = seq, .max_nodes = 2, .draft = &d};
  for (int step = 0; step < 2; ++step) {  // 8 + 8 of the 20 tokens: no draft yet
    ASSERT_TRUE((*drafter)->Propose({&req, 1}).ok());
    EXPECT_TRUE(d.empty()) << "step " << step;
  }
  ASSERT_TRUE((*drafter)->Propose({&req, 1}).ok());  // the last 4, then the chain
  ASSERT_EQ(d.tokens.size(), 2u);
  auto lg = draft->Evaluate(seq, 0, false);
  ASSERT_TRUE(lg.ok());
  int32_t best = 0;
  for (size_t t = 1; t < lg->size(); ++t) {
    if ((*lg)[t] > (*lg)[static_cast<size_t>(best)]) best = static_cast<int32_t>(t);
  }
  EXPECT_EQ(d.tokens[0], best);
}

struct Pair {
  std::string target, draft;
};
class DraftModelPairs : public ::testing::TestWithParam<Pair> {};

// A different draft with the same vocabulary (random weights: few of its tokens are accepted):
// concurrent greedy and seeded requests, n > 1, logprobs, a pool small enough to preempt; every
// output is that of no speculation.
TEST_P(DraftModelPairs, OutputIsIdenticalToNoSpeculation) {
  auto target = Load(GetParam().target);
  ASSERT_NE(target, nullptr);
  auto draft = LoadDraft(GetParam().draft, *target);
  ASSERT_NE(draft, nullptr);
  const int64_t n_vocab = target->config().n_vocab;
  const std::vector<GenerationRequest> reqs = MixedRequests(n_vocab);
  const EngineOptions base = SmallPoolOptions(target->config());
  EngineOptions spec = WithDrafts(base, SpecMethod::kDraftModel, draft->config());
  spec.draft_model = draft.get();
  EngineStats a, b;
  const std::vector<Outcome> plain = RunAll(target.get(), base, reqs, &a);
  const std::vector<Outcome> fast = RunAll(target.get(), spec, reqs, &b);
  ASSERT_EQ(fast.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(plain[i], fast[i]) << "request " << i;
  EXPECT_GT(a.preemptions, 0);  // the pool is small enough to preempt
  EXPECT_GT(b.spec_steps, 0);
  EXPECT_LE(b.spec_accepted_tokens, b.spec_draft_tokens);
  EXPECT_EQ(a.kv_blocks_total, 36);
  EXPECT_EQ(b.kv_blocks_total, 36);
  EXPECT_EQ(b.draft_kv_blocks_total, 36 + 3 * 6);
}

INSTANTIATE_TEST_SUITE_P(Tiny, DraftModelPairs,
                         ::testing::Values(Pair{"tiny-llama-f32", "tiny-llama-q"},
                                           Pair{"tiny-gemma3-f32", "tiny-gemma3-q"},
                                           Pair{"tiny-llama-q", "tiny-llama-q"}),
                         [](const auto& info) {
                           std::string n = info.param.target + "_by_" + info.param.draft;
                           for (char& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

TEST(DraftModel, CancelFreesTheDraftsKv) {
  auto target = Load("tiny-llama-f32");
  ASSERT_NE(target, nullptr);
  auto draft = LoadDraft("tiny-llama-q", *target);
  ASSERT_NE(draft, nullptr);
  auto eng = Engine::Create(target.get(), {.block_size = 4,
                                           .spec = SpecMethod::kDraftModel,
                                           .spec_adaptive = false,
                                           .draft_model = draft.get()});
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  Collector c;
  std::mutex mu;
  int tokens = 0;
  GenerationCallbacks cb = c.Callbacks(1);
  auto on_token = cb.on_token;
  Engine* e = eng->get();
  RequestId id = 0;
  cb.on_token = [&, on_token](const TokenEvent& ev) {
    on_token(ev);
    std::lock_guard<std::mutex> lock(mu);
    if (++tokens == 10) e->Cancel(id);
  };
  {
    std::lock_guard<std::mutex> lock(mu);
    auto submitted = (*eng)->Submit({.prompt = Prompt(3, 12, target->config().n_vocab),
                                     .max_tokens = 100,
                                     .sampling = {.temperature = 0.0f},
                                     .stop_at_eog = false},
                                    std::move(cb));
    ASSERT_TRUE(submitted.ok());
    id = *submitted;
  }
  ASSERT_TRUE(c.Wait());
  EXPECT_EQ(c.out.finish, std::vector<FinishReason>{FinishReason::kCancelled});
  (*eng)->Shutdown(std::chrono::milliseconds(0));
  EXPECT_GT((*eng)->stats().spec_steps, 0);
  EXPECT_EQ((*eng)->stats().draft_kv_blocks_used, 0);
}

TEST(DraftModel, AnotherVocabularyIsRefusedNamingBothFiles) {
  auto target = Load("tiny-llama-f32");
  ASSERT_NE(target, nullptr);
  // Another size of vocabulary.
  auto gemma = LoadDraftModel(kDir + "tiny-gemma3-f32.gguf", *target);
  ASSERT_FALSE(gemma.ok());
  EXPECT_EQ(gemma.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(gemma.status().message().find("tiny-gemma3-f32.gguf"), std::string::npos);
  EXPECT_NE(gemma.status().message().find("tiny-llama-f32.gguf"), std::string::npos);
  // The same size, one token's text changed: a copy of the draft with token 100 renamed.
  auto src = GgufFile::Open(kDir + "tiny-llama-q.gguf");
  ASSERT_TRUE(src.ok());
  GgufWriter w;
  for (const auto& [key, value] : (*src)->metadata()) ASSERT_TRUE(w.SetValue(key, value).ok());
  auto tokens = (*src)->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  (*tokens)[100] = "renamed";
  w.SetStringArray("tokenizer.ggml.tokens", *tokens);
  for (const GgufTensorInfo& t : (*src)->tensors())
    ASSERT_TRUE(w.AddTensorView(t.name, t.type, t.shape, t.data).ok());
  const std::string renamed =
      (std::filesystem::temp_directory_path() / "draft_model_test_renamed.gguf").string();
  ASSERT_TRUE(w.Write(renamed).ok());
  auto other_text = LoadDraftModel(renamed, *target);
  std::filesystem::remove(renamed);
  ASSERT_FALSE(other_text.ok());
  EXPECT_NE(other_text.status().message().find("token 100 is '"), std::string::npos)
      << other_text.status().ToString();
  // The engine checks too; and a draft method without a draft model is refused.
  auto other = ModelRunner::Load(kDir + "tiny-gemma3-f32.gguf", {.n_threads = 1, .n_ctx = 128});
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(
      Engine::Create(target.get(), {.spec = SpecMethod::kDraftModel, .draft_model = other->get()})
          .ok());
  EXPECT_FALSE(Engine::Create(target.get(), {.spec = SpecMethod::kDraftModel}).ok());
  EXPECT_FALSE(LoadDraftModel(kDir + "missing.gguf", *target).ok());
}

TEST(DraftModel, ParsesTheMethod) {
  std::string path;
  auto m = ParseSpecMethod("draft:models/small.gguf", &path);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, SpecMethod::kDraftModel);
  EXPECT_EQ(path, "models/small.gguf");
  EXPECT_FALSE(ParseSpecMethod("draft:").ok());
  EXPECT_FALSE(ParseSpecMethod("draft").ok());
  EXPECT_STREQ(SpecMethodName(SpecMethod::kDraftModel), "draft");
}

}  // namespace
}  // namespace gannet::engine
