// Self-speculation (engine/self_draft.h) on the tiny fixture models: a restricted head's logits are
// the full head's at its columns, bit for bit; the head's tokens are the most frequent sampleable
// ones; and the engine's output with `self` drafts (every token kept, a subset, early exit) is
// exactly the output without speculation (greedy, seeded sampling, n > 1, preemption).
#include "engine/self_draft.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "engine/draft_model.h"
#include "engine/engine.h"
#include "engine/paged_kv.h"
#include "spec_outcome.h"

namespace gannet::engine {
namespace {

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

class Restricted : public ::testing::TestWithParam<std::string> {};

// Every token's row of the restricted head against the full head's column of that token, over a
// prompt run in one pass (all logits) and a decode step after it. Bit-exact: the products of the
// gathered rows are the same kernels over the same bytes with the same activations (the layers
// are shared, and a matmul row's result does not depend on the matrix's other rows, even where
// the backend interleaved the copy: quantized fixtures' K-quant outputs are repacked).
TEST_P(Restricted, LogitsAreTheFullHeadsColumnsBitForBit) {
  auto target = Load(GetParam());
  ASSERT_NE(target, nullptr);
  const int64_t n_vocab = target->n_logits();
  // An odd count, out of order (columns need not follow ids), the last row included.
  std::vector<int32_t> ids;
  for (int32_t t = static_cast<int32_t>(n_vocab) - 1; t >= 0; t -= 3) ids.push_back(t);
  if (ids.size() % 2 == 0) ids.pop_back();
  std::swap(ids[1], ids[ids.size() / 2]);
  auto head = ModelRunner::LoadRestricted(*target, {.tokens = ids});
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  ModelRunner& r = **head;
  EXPECT_EQ(r.n_logits(), static_cast<int64_t>(ids.size()));
  EXPECT_EQ(std::vector<int32_t>(r.logit_tokens().begin(), r.logit_tokens().end()), ids);
  EXPECT_EQ(r.config().n_layer, target->config().n_layer);
  EXPECT_GT(r.head_bytes(), 0u);
  const std::vector<int32_t> prompt = Prompt(4, 13, n_vocab);
  const size_t n = ids.size(), v = static_cast<size_t>(n_vocab);
  for (int pass = 0; pass < 2; ++pass) {
    const std::span<const int32_t> tokens =
        pass == 0 ? std::span<const int32_t>(prompt) : std::span<const int32_t>(&prompt[3], 1);
    const int64_t n_past = pass == 0 ? 0 : static_cast<int64_t>(prompt.size());
    auto full = target->Evaluate(tokens, n_past, /*all_logits=*/true);
    ASSERT_TRUE(full.ok());
    const std::vector<float> want(full->begin(), full->end());
    auto got = r.Evaluate(tokens, n_past, /*all_logits=*/true);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->size(), tokens.size() * n);
    for (size_t row = 0; row < tokens.size(); ++row) {
      for (size_t j = 0; j < n; ++j) {
        const float a = want[row * v + static_cast<size_t>(ids[j])], b = (*got)[row * n + j];
        ASSERT_EQ(std::memcmp(&a, &b, sizeof a), 0)
            << "pass " << pass << " row " << row << " token " << ids[j] << ": " << a << " vs " << b;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, Restricted,
                         ::testing::Values("tiny-llama-f32", "tiny-llama-q", "tiny-gemma3-f32",
                                           "tiny-gemma3-q", "tiny-qwen2-f32"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

TEST(SelfDraft, RestrictedHeadRefusesBadTokensAndLayers) {
  auto target = Load("tiny-llama-f32");
  ASSERT_NE(target, nullptr);
  const int32_t v = static_cast<int32_t>(target->n_logits());
  EXPECT_FALSE(ModelRunner::LoadRestricted(*target, {.tokens = {}}).ok());
  EXPECT_FALSE(ModelRunner::LoadRestricted(*target, {.tokens = {1, 2, 1}}).ok());
  EXPECT_FALSE(ModelRunner::LoadRestricted(*target, {.tokens = {0, v}}).ok());
  EXPECT_FALSE(ModelRunner::LoadRestricted(*target, {.tokens = {-1}}).ok());
  EXPECT_FALSE(ModelRunner::LoadRestricted(
                   *target, {.tokens = {1}, .n_layers = target->config().n_layer + 1})
                   .ok());
  auto early = ModelRunner::LoadRestricted(*target, {.tokens = {1, 2}, .n_layers = 1});
  ASSERT_TRUE(early.ok());
  EXPECT_EQ((*early)->config().n_layer, 1);  // its KV caches have one layer
  EXPECT_FALSE(ModelRunner::LoadRestricted(**early, {.tokens = {1}}).ok());  // not over a subset
  EXPECT_FALSE(
      Engine::Create(target.get(), {.spec = SpecMethod::kSelf, .spec_self_tokens = 0}).ok());
  EXPECT_FALSE(
      Engine::Create(target.get(), {.spec = SpecMethod::kSelf, .spec_self_layers = 99}).ok());
}

// The head's tokens against a brute-force ranking: every end-of-generation id; no control (other
// than those), unused or unknown token; and within each class (SentencePiece single characters,
// other pieces) no left-out token scores above a kept one.
TEST(SelfDraft, TokensAreTheMostFrequentSampleableOnes) {
  for (const char* name : {"tiny-llama-f32", "tiny-gemma3-f32"}) {
    auto target = Load(name);
    ASSERT_NE(target, nullptr);
    const Tokenizer& tok = target->tokenizer();
    const int64_t rows = target->n_logits();
    auto sampleable = [&](int32_t id) {
      return tok.IsEndOfGeneration(id) ||
             (tok.token_attr(id) &
              (TokenAttr::kControl | TokenAttr::kUnused | TokenAttr::kUnknown)) == 0;
    };
    auto one_char = [&](int32_t id) {
      if ((tok.token_attr(id) & TokenAttr::kNormal) == 0) return false;
      int n = 0;
      for (const char c : tok.token_text(id)) n += (c & 0xC0) != 0x80;
      return n == 1;
    };
    int32_t n_sampleable = 0, n_chars = 0;
    for (int32_t id = 0; id < tok.n_vocab(); ++id) {
      n_sampleable += sampleable(id) ? 1 : 0;
      n_chars += sampleable(id) && !tok.IsEndOfGeneration(id) && one_char(id) ? 1 : 0;
    }
    ASSERT_LT(n_sampleable, tok.n_vocab());  // the fixture has tokens to leave out
    ASSERT_GT(n_chars, 0);
    for (const int32_t n : {1, 40, 100, n_sampleable, n_sampleable + 50}) {
      const std::vector<int32_t> ids = SelfDraftTokens(tok, rows, n);
      EXPECT_EQ(static_cast<int32_t>(ids.size()),
                std::max<int32_t>(std::min(n, n_sampleable),
                                  static_cast<int32_t>(tok.end_of_generation_ids().size())))
          << name << " n " << n;
      EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
      std::vector<bool> kept(static_cast<size_t>(tok.n_vocab()), false);
      float lowest[2] = {1e30f, 1e30f};  // per class: other pieces, single characters
      for (const int32_t id : ids) {
        ASSERT_TRUE(sampleable(id)) << name << " token " << id;
        kept[static_cast<size_t>(id)] = true;
        if (!tok.IsEndOfGeneration(id)) {
          float& l = lowest[one_char(id) ? 1 : 0];
          l = std::min(l, tok.token_score(id));
        }
      }
      for (const int32_t id : tok.end_of_generation_ids()) {
        EXPECT_TRUE(kept[static_cast<size_t>(id)]) << name << " eog " << id;
      }
      for (int32_t id = 0; id < tok.n_vocab(); ++id) {
        if (!kept[static_cast<size_t>(id)] && sampleable(id)) {
          EXPECT_LE(tok.token_score(id), lowest[one_char(id) ? 1 : 0])
              << name << " n " << n << " left out " << id;
        }
      }
    }
  }
}

// With every sampleable token in the head and every layer, the draft's chain is the target's
// greedy continuation unless the target's argmax is a token left out (a control token): nearly
// every chain token is accepted, and the output is that of no speculation.
TEST(SelfDraft, FullHeadAcceptsTheChain) {
  auto target = Load("tiny-llama-f32");
  ASSERT_NE(target, nullptr);
  const GenerationRequest req{.prompt = Prompt(2, 10, target->config().n_vocab),
                              .max_tokens = 41,
                              .sampling = {.temperature = 0.0f},
                              .stop_at_eog = false,
                              .top_logprobs = 1};
  EngineOptions base{.block_size = 4, .max_batch_tokens = 64, .max_seqs = 4};
  EngineOptions spec = base;
  spec.spec = SpecMethod::kSelf;
  spec.spec_max_tokens = 3;  // a chain of 3
  spec.spec_adaptive = false;
  spec.spec_self_tokens = 100000;
  EngineStats a, b;
  const std::vector<Outcome> plain = RunAll(target.get(), base, {req}, &a);
  const std::vector<Outcome> fast = RunAll(target.get(), spec, {req}, &b);
  ASSERT_EQ(fast.size(), 1u);
  EXPECT_EQ(plain[0], fast[0]);
  EXPECT_GT(b.spec_steps, 0);
  EXPECT_GE(10 * b.spec_accepted_tokens, 9 * b.spec_draft_tokens);
  EXPECT_LT(b.steps, a.steps / 2);
}

struct Case {
  std::string model;
  int32_t tokens = 0, layers = 0;
  SpecMethod method = SpecMethod::kSelf;
};
class SelfDraftOutputs : public ::testing::TestWithParam<Case> {};

// Heads that leave out part of the vocabulary, and early exits: concurrent greedy and seeded
// requests, n > 1, logprobs, a pool small enough to preempt; every output is that of no
// speculation.
TEST_P(SelfDraftOutputs, AreIdenticalToNoSpeculation) {
  auto target = Load(GetParam().model);
  ASSERT_NE(target, nullptr);
  const int64_t n_vocab = target->config().n_vocab;
  const std::vector<GenerationRequest> reqs = MixedRequests(n_vocab);
  const EngineOptions base = SmallPoolOptions(target->config());
  models::ModelConfig draft_config = target->config();
  if (GetParam().layers > 0) draft_config.n_layer = GetParam().layers;
  EngineOptions spec = WithDrafts(base, GetParam().method, draft_config);
  spec.spec_self_tokens = GetParam().tokens;
  spec.spec_self_layers = GetParam().layers;
  EngineStats a, b;
  const std::vector<Outcome> plain = RunAll(target.get(), base, reqs, &a);
  const std::vector<Outcome> fast = RunAll(target.get(), spec, reqs, &b);
  ASSERT_EQ(fast.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(plain[i], fast[i]) << "request " << i;
  EXPECT_GT(a.preemptions, 0);  // the pool is small enough to preempt
  EXPECT_GT(b.spec_steps, 0);
  // Random weights: an early exit may agree with the whole model on nothing.
  if (GetParam().layers == 0) {
    EXPECT_GT(b.spec_accepted_tokens, 0);
  }
  EXPECT_LE(b.spec_accepted_tokens, b.spec_draft_tokens);
  EXPECT_EQ(a.kv_blocks_total, 36);
  EXPECT_EQ(b.kv_blocks_total, 36);
  EXPECT_EQ(b.draft_kv_blocks_total, 36 + 3 * 6);
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, SelfDraftOutputs,
    ::testing::Values(Case{"tiny-llama-f32", 120, 0}, Case{"tiny-llama-q", 200, 1},
                      Case{"tiny-gemma3-f32", 150, 0}, Case{"tiny-gemma3-q", 100000, 4},
                      Case{"tiny-qwen2-f32", 60, 1},
                      // ngram first, the model where it has no match
                      Case{"tiny-llama-q", 200, 0, SpecMethod::kNgramSelf},
                      Case{"tiny-gemma3-f32", 150, 2, SpecMethod::kNgramSelf}),
    [](const auto& info) {
      std::string n = info.param.model + "_" + std::to_string(info.param.tokens) + "_" +
                      std::to_string(info.param.layers) + "_" + SpecMethodName(info.param.method);
      for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return n;
    });

// The draft's catch-up copies the target's K/V of the positions a request names instead of running
// them: with the target's K/V of the same tokens, the draft is the one the draft makes by
// running them itself (every layer, and an early exit that copies the first 2 of 7 layers); with
// the K/V of other tokens in their place, it differs (so they were read, not recomputed).
TEST(SelfDraft, CopiedTargetKvGivesTheDraftOfRecomputing) {
  auto target = Load("tiny-gemma3-q");
  ASSERT_NE(target, nullptr);
  const int64_t n_vocab = target->config().n_vocab;
  const std::vector<int32_t> seq = Prompt(3, 21, n_vocab), other = Prompt(8, 21, n_vocab);
  auto fill = [&](const std::vector<int32_t>& tokens) {
    auto store = PagedKvStore::Create(target->config(), 8, 4);
    EXPECT_TRUE(store.ok());
    SeqKvViews views;
    const std::vector<int32_t> table = {7, 2, 5, 0, 1, 3, 4, 6};
    store->Assign(table, &views);
    const BatchSeq b{.tokens = std::span<const int32_t>(tokens).first(20), .kv = views.layers};
    EXPECT_TRUE(target->Execute({&b, 1}).ok());
    return std::move(*store);
  };
  const PagedKvStore same = fill(seq), wrong = fill(other);
  const std::vector<int32_t> table = {7, 2, 5, 0, 1, 3, 4, 6};
  for (const int64_t layers : {0, 2}) {
    auto head = LoadSelfDraft(*target, {.n_tokens = 100000, .n_layers = layers});
    ASSERT_TRUE(head.ok()) << head.status().ToString();
    auto propose = [&](const PagedKvStore* source) {
      auto d =
          ModelDrafter::Create(head->get(), {.n_blocks = 16, .block_size = 4, .branch_width = 1});
      EXPECT_TRUE(d.ok());
      EXPECT_TRUE((*d)->CopyKvFrom(source).ok());
      Draft draft;
      const DraftRequest r{.seq = 1,
                           .tokens = seq,
                           .max_nodes = 6,
                           .draft = &draft,
                           .target_blocks = table,
                           .target_kv = 20};
      EXPECT_TRUE((*d)->Propose({&r, 1}).ok());
      EXPECT_EQ(draft.tokens.size(), 6u);
      return draft.tokens;
    };
    const std::vector<int32_t> recomputed = propose(nullptr);
    EXPECT_EQ(propose(&same), recomputed) << "layers " << layers;
    EXPECT_NE(propose(&wrong), recomputed) << "layers " << layers;
  }
}

TEST(SelfDraft, ParsesTheMethod) {
  auto m = ParseSpecMethod("self");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, SpecMethod::kSelf);
  EXPECT_STREQ(SpecMethodName(SpecMethod::kSelf), "self");
  EXPECT_FALSE(ParseSpecMethod("self:").ok());
  m = ParseSpecMethod("ngram+self");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, SpecMethod::kNgramSelf);
  EXPECT_STREQ(SpecMethodName(SpecMethod::kNgramSelf), "ngram+self");
  EXPECT_FALSE(ParseSpecMethod("self+ngram").ok());
}

}  // namespace
}  // namespace gannet::engine
