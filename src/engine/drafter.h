// Drafter: where speculative drafts come from (engine.h's SpecMethod), behind one interface. The
// engine asks once per step, after the step's tokens were delivered, for a draft for every
// sequence its SpecController (spec_control.h) wants one for, and verifies whatever comes back as
// a token tree; the output never depends on a drafter.
//
//   ngram        MakeNgramDrafter: prompt lookup over each sequence's own tokens (ngram_drafter.h)
//   draft:FILE   ModelDrafter (draft_model.h): a smaller model with the same vocabulary
//   self         ModelDrafter over the target with a restricted head (self_draft.h)
//   ngram+self   MakeChainedDrafter(ngram, self): the n-gram lookup where the text has a match (it
//                costs nothing), the model where it has none
//
// A drafter may keep per-sequence state (an n-gram index, K/V); ReleaseIf frees it.
// Thread-safety: none; the engine's step thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "base/status.h"
#include "engine/scheduler.h"

namespace gannet::engine {

// One sequence's request for a draft in one step.
struct DraftRequest {
  SeqId seq = 0;
  std::span<const int32_t> tokens;  // the sequence's tokens, prompt and output, newest last
  int32_t max_nodes = 0;            // draft tokens at most (1..kMaxDraftTokens)
  // Draft tokens at most where a model's forward passes make them (their cost counted in), or -1
  // for max_nodes. A drafter that costs nothing (the n-gram lookup) may draft max_nodes where a
  // model may draft fewer or none.
  int32_t model_nodes = -1;
  Draft* draft = nullptr;  // receives the draft (left empty when none can be made)
  // With a target K/V source (ModelDrafter::CopyKvFrom): the sequence's block table in the
  // target's store and how many of its first positions hold the target's K/V at their positions.
  std::span<const int32_t> target_blocks;
  int32_t target_kv = 0;
};

// The draft tokens a model's passes may make for `r`: model_nodes, at most max_nodes.
inline int32_t ModelNodes(const DraftRequest& r) {
  return r.model_nodes < 0 ? r.max_nodes
                           : (r.model_nodes < r.max_nodes ? r.model_nodes : r.max_nodes);
}

class Drafter {
 public:
  virtual ~Drafter() = default;

  // Drafts for several sequences at once; each request's draft is reset first. An error from a
  // model pass leaves the drafts of that pass empty and is returned (the caller may go on).
  // REQUIRES: a sequence's tokens only grow from one call to the next (until it is released).
  virtual Status Propose(std::span<const DraftRequest> requests) = 0;

  // The draft tokens the last Propose asked of a model's forward passes (its budgets), 0 when
  // none ran: the engine charges their time to them (SpecCostModel::ObserveDraft).
  virtual int32_t last_model_tokens() const = 0;

  // Frees what it keeps for every sequence for which `gone` is true.
  virtual void ReleaseIf(const std::function<bool(SeqId)>& gone) = 0;
  // Sequences it keeps state for.
  virtual int32_t num_seqs() const = 0;
};

// An NgramDrafter per sequence, each fed the tokens its sequence gained since the last call.
std::unique_ptr<Drafter> MakeNgramDrafter();

// `first` proposes; the requests it leaves without a draft go to `rest`.
// REQUIRES: both outlive the returned drafter.
std::unique_ptr<Drafter> MakeChainedDrafter(Drafter* first, Drafter* rest);

}  // namespace gannet::engine
