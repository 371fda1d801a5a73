// ModelDrafter: speculative drafts from a second, smaller model with the target's vocabulary
// (`--spec draft:FILE`), or from the target itself through a restricted output head
// (`--spec self`, self_draft.h: the runner's logits columns are a subset of the vocabulary,
// ModelRunner::logit_tokens, mapped back to token ids here). It proposes a token tree in the layout
// engine/scheduler.h's Draft expects, which the target verifies like any other draft (engine.h), so
// the output never depends on it.
//
// Per sequence that speculates, the draft model keeps its own paged K/V (its own PagedKvStore and
// KvCacheManager, sized by the engine like the target's) of a prefix of the sequence's tokens. To
// propose, it
//   1. catches up: the longest prefix of the tokens it has K/V for that is still the target's
//      sequence is kept (accepted draft tokens need no recomputation), and the rest of the
//      sequence's tokens run in one forward pass, batched with every other proposing sequence;
//   2. decodes greedily: up to depth - 1 more passes, each one token per sequence (batched), the
//      top-1 token of each step extending the chain;
//   3. lays out the tree: the chain first (the likeliest path takes the first slots, so accepting
//      it moves no K/V), then, for the first `branch_levels` levels, the next likeliest
//      `branch_width - 1` tokens of that level's logits as leaves beside the chain token.
// The K/V of the chain tokens stay: when the target accepts them, the next catch-up starts after
// them. Full blocks of tokens the target has accepted are registered in the draft pool's prefix
// cache, so samples of one prompt and repeated prompts share them.
//
// Memory: the draft pool is fixed at creation. A sequence that does not fit (the pool is short,
// or it is longer than the draft model's context) simply gets no draft. Release() frees a
// sequence's blocks; the engine calls it when the sequence finishes, is cancelled or preempted.
// Cost per proposal: one catch-up row per newly accepted token, plus depth - 1 single-token passes
// (shared by all proposing sequences of the step).
// Thread-safety: none; used by the engine's step thread between target passes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "engine/drafter.h"
#include "engine/kv_cache_manager.h"
#include "engine/model_runner.h"
#include "engine/paged_kv.h"
#include "engine/scheduler.h"

namespace gannet::engine {

// Loads a draft model for `target`: the same number of threads, the target's context (or the
// draft model's training context where that is shorter), and a vocabulary identical to the
// target's (CheckDraftVocabulary). Errors name both files.
Result<std::unique_ptr<ModelRunner>> LoadDraftModel(const std::string& path,
                                                    const ModelRunner& target);

// OK when `draft` has the target's vocabulary: the same logits rows, the same tokens with the same
// texts (special tokens included). Otherwise InvalidArgument naming both files and the first
// difference.
Status CheckDraftVocabulary(const ModelRunner& target, const ModelRunner& draft);

struct DraftModelOptions {
  int32_t n_blocks = 0;            // the draft's KV pool (blocks of block_size positions)
  int32_t block_size = 16;         //
  int32_t max_batch_tokens = 512;  // catch-up tokens of one step over all sequences
  int32_t branch_levels = 2;       // first levels of the tree that get alternatives
  int32_t branch_width = 2;        // tokens at those levels (1: a chain)
};

class ModelDrafter final : public Drafter {
 public:
  // REQUIRES: `draft` outlives the ModelDrafter and is used by nobody else meanwhile.
  static Result<std::unique_ptr<ModelDrafter>> Create(ModelRunner* draft,
                                                      const DraftModelOptions& options);

  // Drafts for several sequences in one batch of draft-model passes. A sequence whose catch-up
  // does not fit in this step's max_batch_tokens runs part of it and gets no draft this time.
  // An error from a forward pass releases the sequences of that pass and is returned (the caller
  // may go on without drafts).
  Status Propose(std::span<const DraftRequest> requests) override;
  // The budgets of the last Propose's requests.
  int32_t last_model_tokens() const override { return model_tokens_; }

  // A draft that runs the target's own first layers (engine/self_draft.h) computes exactly the
  // K/V the target holds for them: catch-up copies the positions a request names in `target`
  // (DraftRequest::target_kv) instead of running them, so only the newest tokens run. Null: off.
  // REQUIRES: `target` outlives the drafter; its first layers are this draft's layers.
  Status CopyKvFrom(const PagedKvStore* target);

  // Frees a sequence's draft K/V (no-op when unknown).
  void Release(SeqId seq);
  // Releases every sequence for which `gone` is true.
  void ReleaseIf(const std::function<bool(SeqId)>& gone) override;

  int32_t num_seqs() const override { return static_cast<int32_t>(seqs_.size()); }
  int32_t blocks_used() const { return kv_.pool().num_used(); }
  const KvCacheManager& kv() const { return kv_; }

  // The tree shape for a budget of max_nodes tokens: chain depth and the levels with alternatives.
  struct Shape {
    int32_t depth = 0;
    int32_t branch_levels = 0;
  };
  Shape ShapeFor(int32_t max_nodes) const;

 private:
  struct SeqState {
    std::vector<int32_t> tokens;  // tokens whose K/V are at positions [0, size) of its slots
  };
  // One sequence's share of a step's passes.
  struct Work {
    const DraftRequest* request = nullptr;
    SeqState* state = nullptr;
    int32_t keep = 0;       // positions whose K/V are reused or copied from the target
    int32_t copy_from = 0;  // positions [copy_from, keep) are copied from the target first
    int32_t n_run = 0;      // catch-up tokens this step
    bool drafts = false;    // caught up fully: proposes this step
    Shape shape;
    std::vector<int32_t> chain;                      // level -> top-1 token
    std::vector<std::vector<int32_t>> alternatives;  // level -> next likeliest tokens
  };

  ModelDrafter(ModelRunner* draft, const DraftModelOptions& options, PagedKvStore store,
               KvCacheManager kv)
      : runner_(draft), options_(options), store_(std::move(store)), kv_(std::move(kv)) {}

  // Decides what sequence r reuses and runs; false when it cannot take part this step.
  bool Plan(const DraftRequest& r, int32_t* budget, Work* w);
  // Gives seq exactly `slots` positions; false when the pool is short.
  bool ResizeSlots(SeqId seq, int32_t slots);
  // Runs the catch-up pass; then the chain's level-0 tokens.
  Status CatchUp(std::vector<Work>& work);
  // Runs chain level `level` - 1 of every sequence deep enough; then their level's tokens.
  Status DecodeLevel(std::vector<Work>& work, int32_t level);
  // Reads the top tokens of one logits row into w's level.
  void TakeLevel(std::span<const float> row, Work* w) const;
  static Draft Layout(const Work& w);

  ModelRunner* runner_;
  DraftModelOptions options_;
  const PagedKvStore* target_kv_ = nullptr;
  PagedKvStore store_;
  KvCacheManager kv_;
  std::unordered_map<SeqId, SeqState> seqs_;
  std::vector<SeqKvViews> views_;
  std::vector<BatchSeq> batch_;
  std::vector<Work*> in_batch_;
  int32_t model_tokens_ = 0;
};

}  // namespace gannet::engine
