// Engine, speculative decoding: the methods' names, and the drafts each step proposes (sized by
// the per-sample controllers against the step's cost, engine/spec_control.h; made by the drafter,
// engine/drafter.h).
#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>

#include "engine/engine.h"
#include "engine/engine_internal.h"

namespace gannet::engine {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

const char* SpecMethodName(SpecMethod m) {
  switch (m) {
    case SpecMethod::kNone:
      return "none";
    case SpecMethod::kNgram:
      return "ngram";
    case SpecMethod::kDraftModel:
      return "draft";
    case SpecMethod::kSelf:
      return "self";
    case SpecMethod::kNgramSelf:
      return "ngram+self";
  }
  return "none";
}

Result<SpecMethod> ParseSpecMethod(std::string_view name, std::string* draft_path) {
  if (name == "none") return SpecMethod::kNone;
  if (name == "ngram") return SpecMethod::kNgram;
  if (name == "self") return SpecMethod::kSelf;
  if (name == "ngram+self") return SpecMethod::kNgramSelf;
  constexpr std::string_view kDraft = "draft:";
  if (name.size() > kDraft.size() && name.substr(0, kDraft.size()) == kDraft) {
    if (draft_path != nullptr) *draft_path = std::string(name.substr(kDraft.size()));
    return SpecMethod::kDraftModel;
  }
  return Status::InvalidArgument("unknown speculative decoding method '" + std::string(name) +
                                 "' (choices: none, ngram, self, ngram+self, draft:FILE)");
}

void Engine::ProposeDraft(SampleJob& job) const {
  Active& a = *job.active;
  const size_t i = static_cast<size_t>(job.index);
  for (const SampleJob::Token& t : job.tokens) {
    if (t.output.emitted) a.history[i].push_back(t.token);
  }
  if (job.entry->speculative()) {
    job.verified_class = a.spec[i].pending_class();
    job.verified_drafted = static_cast<int32_t>(job.entry->tokens.size()) - 1;
    job.verified_accepted = static_cast<int32_t>(job.tokens.size()) - 1;
    a.spec[i].Observe(job.verified_drafted, job.verified_accepted);
  }
  if (job.tokens.back().output.finished || job.entry->num_samples != 1) return;
  // An n-gram draft costs nothing to make: it is made whenever a draft could pay, and cut to what
  // its class's acceptance pays for once its class is known (ProposeDrafts). A model's draft is
  // sized before its passes run.
  const bool free_first =
      options_.spec == SpecMethod::kNgram || options_.spec == SpecMethod::kNgramSelf;
  const int32_t m = free_first ? a.spec[i].FreeBudget(spec_threshold_)
                               : a.spec[i].NextBudget(spec_threshold_, spec_lone_);
  if (m <= 0) return;
  // The drafter runs after every job (ProposeDrafts), for no more tokens than the sample may still
  // generate after the next one.
  const int64_t generated =
      static_cast<int64_t>(a.history[i].size()) - static_cast<int64_t>(a.request.prompt.size());
  job.draft_budget =
      static_cast<int32_t>(std::min<int64_t>(m, a.request.max_tokens - generated - 1));
  if (options_.spec == SpecMethod::kNgramSelf && spec_model_threshold_ > 0) {
    // Where the lookup finds nothing, the self draft's passes must pay for their tokens too.
    job.draft_model_budget =
        std::min(a.spec[i].NextBudget(spec_model_threshold_, spec_lone_), job.draft_budget);
  }
}

void Engine::ProposeDrafts() {
  // The sampling jobs ran in parallel; their verifications reach the shared estimates here, in
  // job order.
  for (const SampleJob& job : jobs_) {
    if (job.verified_class >= 0) {
      spec_shared_.ObserveClass(job.verified_class, job.verified_drafted, job.verified_accepted);
    }
  }
  draft_requests_.clear();
  for (SampleJob& job : jobs_) {
    if (job.active == nullptr || job.draft_budget <= 0) continue;
    // The target's K/V this step leaves at their positions: everything before the step's rows,
    // and its rows unless they were a tree (whose accepted path is compacted after drafting).
    const ScheduledSeq& e = *job.entry;
    const int32_t target_kv =
        e.start + (e.speculative() ? 1 : static_cast<int32_t>(e.tokens.size()));
    draft_requests_.push_back(
        DraftRequest{.seq = e.seq_id,
                     .tokens = job.active->history[static_cast<size_t>(job.index)],
                     .max_nodes = job.draft_budget,
                     .model_nodes = job.draft_model_budget,
                     .draft = &job.draft,
                     .target_blocks = e.block_table,
                     .target_kv = target_kv});
  }
  if (draft_requests_.empty()) return;
  const Clock::time_point start = Clock::now();
  // A failed draft pass only costs this step's drafts (the sequences start afresh next time):
  // the target's output never depends on them.
  (void)drafter_->Propose(draft_requests_);
  for (SampleJob& job : jobs_) {
    if (job.active == nullptr || job.draft_budget <= 0 || job.draft.match <= 0) continue;
    // An n-gram draft: verify as much of it as its class pays for. Its nodes are in depth-first
    // order, heaviest chain first, so a prefix is a tree and keeps the likeliest chain.
    Draft& d = job.draft;
    const int32_t keep = job.active->spec[static_cast<size_t>(job.index)].Keep(
        d.match, spec_threshold_, static_cast<int32_t>(d.tokens.size()), spec_lone_);
    d.tokens.resize(static_cast<size_t>(keep));
    d.parents.resize(static_cast<size_t>(keep));
  }
  const int32_t model_tokens = drafter_->last_model_tokens();
  if (model_tokens > 0) {
    const double seconds = Seconds(Clock::now() - start);
    spec_cost_.ObserveDraft(model_tokens, seconds);
    spec_draft_seconds_ += seconds;
  }
}

}  // namespace gannet::engine
