// Engine, constrained decoding: the grammar vocabulary and mask caches, the masks of a step
// (prefetched during the forward pass, engine/grammar_masks.h), masking a row, lazy triggers.
#include <limits>
#include <string>

#include "engine/engine.h"
#include "engine/engine_internal.h"

namespace gannet::engine {

Status GrammarTooCostly(const char* where) {
  return Status::InvalidArgument(
      std::string("grammar: the set of tokens allowed ") + where + " needs more than " +
      std::to_string(grammar::MatcherOptions().max_mask_work) +
      " matching steps; the grammar is too ambiguous (too many alternatives stay open at once) "
      "to constrain generation at token speed: simplify it");
}

void Engine::StartMasks(const SchedulerOutput& out) {
  // The matcher state each of these masks depends on is final now: only the sampling of this
  // step's logits advances it. (A draft tree's later rows depend on what is sampled: not here.)
  prefetch_tasks_.clear();
  prefetch_owners_.clear();
  for (const ScheduledSeq& s : out.seqs) {
    if (!s.needs_logits) continue;
    auto it = active_.find(s.request_id);
    if (it == active_.end() || it->second->masks == nullptr) continue;
    Active& a = *it->second;
    for (int32_t k = 0; k < s.num_samples; ++k) {
      const size_t i = static_cast<size_t>(s.sample_index + k);
      // A lazy grammar not yet triggered has no mask to compute (and its sampling job uses the
      // mask buffer as scratch).
      if (!a.Constrained(i)) continue;
      a.prefetched[i] = static_cast<int32_t>(prefetch_tasks_.size());
      prefetch_tasks_.push_back(
          {.cache = a.masks.get(), .matcher = &a.matchers[i], .mask = a.mask_words[i]});
      prefetch_owners_.emplace_back(&a, i);
    }
  }
  prefetch_->Start(prefetch_tasks_);
}

void Engine::FinishMasks() {
  prefetch_->Finish();
  for (const auto& [a, i] : prefetch_owners_) a->prefetched[i] = -1;
  prefetch_owners_.clear();
}

Engine::Prefetched Engine::TakePrefetchedMask(Active& a, size_t sample) const {
  const int32_t task = a.prefetched[sample];
  if (task < 0) return Prefetched::kNo;
  a.prefetched[sample] = -1;
  return prefetch_->Ensure(static_cast<size_t>(task)) ? Prefetched::kFilled
                                                      : Prefetched::kTooCostly;
}

Engine::GrammarMask Engine::ApplyGrammar(Active& a, size_t sample, std::span<float> logits,
                                         Prefetched prefetched) {
  std::vector<uint32_t>& mask = a.mask_words[sample];
  if (prefetched == Prefetched::kTooCostly) return GrammarMask::kTooCostly;
  if (prefetched == Prefetched::kNo && !a.masks->FillNextTokenMask(a.matchers[sample], mask)) {
    return GrammarMask::kTooCostly;
  }
  bool any = false;
  for (size_t t = 0; t < logits.size(); ++t) {
    const bool allowed = t / 32 < mask.size() && ((mask[t / 32] >> (t % 32)) & 1u) != 0;
    if (!allowed) logits[t] = -std::numeric_limits<float>::infinity();
    any |= allowed;
  }
  return any ? GrammarMask::kSome : GrammarMask::kNone;
}

int32_t Engine::WatchTrigger(Active& a, size_t sample, int32_t token, std::span<const float> logits,
                             std::span<float> work) {
  const grammar::TokenVocabulary& vocab = a.masks->vocab();
  grammar::TriggerWatch& watch = a.watches[sample];
  if (watch.Observe(vocab, token, &a.matchers[sample])) return token;
  // The token completed a trigger with bytes after it that the grammar refuses (rare: a marker
  // is usually a token of its own). Sample again from the row without every such token.
  std::vector<uint32_t>& refused = a.mask_words[sample];
  std::fill(refused.begin(), refused.end(), 0u);
  watch.OrRefused(vocab, a.matchers[sample], refused);
  std::copy(logits.begin(), logits.end(), work.begin());
  for (size_t t = 0; t < work.size() && t / 32 < refused.size(); ++t) {
    if ((refused[t / 32] >> (t % 32)) & 1u) work[t] = -std::numeric_limits<float>::infinity();
  }
  token = a.samplers[sample].Sample(work);
  // Refused only when every allowed logit was -inf (the sampler then answers 0): a dead end.
  return watch.Observe(vocab, token, &a.matchers[sample]) ? token : -1;
}

std::shared_ptr<const grammar::MaskCache> Engine::MasksFor(
    std::shared_ptr<const grammar::TokenVocabulary> vocab,
    const std::shared_ptr<const grammar::Grammar>& grammar) {
  std::lock_guard<std::mutex> lock(vocab_mu_);
  for (auto it = mask_caches_.begin(); it != mask_caches_.end(); ++it) {
    if ((*it)->grammar() == grammar.get()) {
      mask_caches_.splice(mask_caches_.begin(), mask_caches_, it);
      return mask_caches_.front();
    }
  }
  mask_caches_.push_front(std::make_shared<const grammar::MaskCache>(std::move(vocab), grammar));
  if (mask_caches_.size() > kMaxMaskCaches) mask_caches_.pop_back();
  return mask_caches_.front();
}

Result<std::shared_ptr<const grammar::TokenVocabulary>> Engine::GrammarVocabulary() {
  std::lock_guard<std::mutex> lock(vocab_mu_);
  if (vocab_ != nullptr) return vocab_;
  // One entry per logits row: ids past the tokenizer's vocabulary have no bytes (never allowed).
  const Tokenizer& tok = runner_->tokenizer();
  std::vector<std::string> pieces(static_cast<size_t>(runner_->config().n_vocab));
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    pieces[static_cast<size_t>(id)] = tok.TokenToPiece(id, /*render_special=*/false);
  }
  GANNET_ASSIGN_OR_RETURN(
      vocab_, grammar::TokenVocabulary::Create(std::move(pieces), tok.end_of_generation_ids()));
  return vocab_;
}

}  // namespace gannet::engine
