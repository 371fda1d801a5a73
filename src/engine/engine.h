// Engine: the one way gannet generates. Front ends (gannet run, chat, serve, the benchmarks)
// submit requests; a step thread runs a loop in which every iteration is one forward pass over a
// mixed batch (decodes and prompt chunks of many sequences, Orca's iteration-level scheduling):
//
//   admit new requests -> apply cancels -> schedule (engine/scheduler.h) -> execute (ModelRunner,
//   over the paged KV store) -> sample (and run each sample's OutputProcessor) -> emit outputs
//   (callbacks) -> update the scheduler -> finish requests
//
// Speculative decoding (EngineOptions::spec): with each sampled token the engine may propose a
// draft tree for the sequence (engine/ngram_drafter.h, or a second, smaller model with the same
// vocabulary: engine/draft_model.h, whose passes run after sampling, batched over the sequences
// that draft; or the target itself with a restricted output head: engine/self_draft.h); the next
// step computes the tree beside the sequence's newest token in one tree-masked pass, and the tokens
// are sampled row by row down the tree exactly as without speculation (the same sampler, grammar
// and output processing, the same random numbers), following a draft node while it matches what was
// sampled. So the output is the same token for token, with or without speculation, greedy or not;
// only the steps it takes differ. engine/spec_control.h decides per sequence whether and how much
// to draft.
//
// The output side is the engine's: each sampled token is detokenized (whole UTF-8 only), checked
// against the end-of-generation ids and the request's stop strings (engine/output_processor.h),
// and reaches the front end as text deltas with one FinishReason per sample. A request joins the
// very next step after Submit.
//
// Thread-safety: Submit, Cancel, stats and Shutdown may be called from any thread. Callbacks run
// on the step thread: they must be quick and must not call back into the Engine except Cancel
// (which is then applied before the next step).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "engine/draft_model.h"
#include "engine/drafter.h"
#include "engine/finish_reason.h"
#include "engine/grammar_masks.h"
#include "engine/model_runner.h"
#include "engine/paged_kv.h"
#include "engine/prefill_pacer.h"
#include "engine/scheduler.h"
#include "engine/self_draft.h"
#include "engine/spec_control.h"
#include "engine/stop_strings.h"
#include "grammar/grammar.h"
#include "grammar/mask_cache.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"
#include "grammar/trigger.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"

namespace gannet::engine {

// How drafts for speculative decoding are made.
enum class SpecMethod {
  kNone,        // no speculation
  kNgram,       // prompt lookup over the sequence's own tokens (engine/ngram_drafter.h)
  kDraftModel,  // a smaller model with the same vocabulary (engine/draft_model.h)
  kSelf,        // the target itself with a restricted output head (engine/self_draft.h)
  kNgramSelf,   // ngram where the text has a match, self where it has none (engine/drafter.h)
};
const char* SpecMethodName(SpecMethod m);
// "none", "ngram", "self", "ngram+self" or "draft:FILE" (then *draft_path = FILE, when draft_path
// is given); anything else, "draft:" without a file included, is InvalidArgument naming the
// choices.
Result<SpecMethod> ParseSpecMethod(std::string_view name, std::string* draft_path = nullptr);

struct EngineOptions {
  int32_t block_size = 16;  // tokens per KV block
  // KV pool size, a draft model's K/V included (SpecMethod::kSelf, kDraftModel: each target block
  // takes a draft block with it, and each sequence's draft chain its blocks); 0: a quarter of the
  // machine's available memory, at most what max_seqs full contexts need.
  size_t kv_memory_bytes = 0;
  int32_t max_batch_tokens = 512;  // tokens in one forward pass (chunked prefill budget)
  int32_t max_seqs = 64;           // sequences in one forward pass
  int32_t max_queue = 256;         // requests waiting (not yet running) before Submit refuses
  bool prefix_caching = true;
  // A step that computes prompt chunks beside decoding sequences is sized (PrefillPacer) to take
  // about this many times a decode-only step, so streams keep their pace while a long prompt is
  // ingested. <= 0: prompt chunks use whatever is left of max_batch_tokens.
  double itl_factor = 2.0;
  SpecMethod spec = SpecMethod::kNone;
  int32_t spec_max_tokens = 8;  // draft tokens per sequence per step (1..kMaxDraftTokens)
  // Off: draft whatever the measured step costs say (spec_control.h's threshold is 0), so the
  // schedule depends only on the tokens (tests).
  bool spec_adaptive = true;
  // SpecMethod::kDraftModel: the draft model (LoadDraftModel; its vocabulary is checked again by
  // Create). Must outlive the Engine and be used by nothing else meanwhile. Its KV pool gets as
  // many blocks as the target's, plus room for every sequence's draft chain.
  ModelRunner* draft_model = nullptr;
  // SpecMethod::kSelf and kNgramSelf: the engine makes the draft runner over the target
  // (LoadSelfDraft): an output
  // head of this many of the most frequent tokens, after this many layers (0: all).
  int32_t spec_self_tokens = 32768;
  int32_t spec_self_layers = 0;
  // Constrained decoding: compute each step's grammar masks on a worker thread while the forward
  // pass runs (engine/grammar_masks.h) rather than after it. The outputs are the same either way.
  bool grammar_overlap = true;
  // Benchmarks (`gannet bench --parallel --profile`): before_step is called on the step thread
  // right before each forward pass of the target model, and step_observer after each of its graph
  // nodes (graph/plan.h). Both must outlive the Engine; null / empty: none.
  std::function<void()> before_step;
  const graph::NodeObserver* step_observer = nullptr;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included if wanted
  int32_t max_tokens = 16;      // per sample; >= 1
  int32_t n = 1;                // samples; sample i uses seed + i when a seed is given
  SamplingParams sampling;
  bool stop_at_eog = true;        // the model's end-of-generation tokens end a sample (not emitted)
  std::vector<std::string> stop;  // stop strings: a sample's text ends before the first to complete
                                  // (at most kMaxStopStrings, kMaxStopBytes in all)
  int32_t top_logprobs = -1;  // < 0: no logprobs; 0..20: the chosen token's and this many top ones
  // Constrained decoding: every sampled token keeps the sample's text inside this grammar's
  // language (tokens it does not allow are masked out before sampling; end-of-generation tokens
  // are allowed only where the grammar may end). Null: unconstrained.
  std::shared_ptr<const grammar::Grammar> grammar;
  // Lazy constrained decoding (grammar/trigger.h): with triggers, each sample is unconstrained
  // until its output fires one, and the grammar (which reads the trigger first) constrains the
  // rest. Empty: the grammar applies from the first token. Token ids must be in the vocabulary.
  grammar::GrammarTriggers grammar_triggers;
  // Control tokens whose text is part of the output (a model's tool-call markers, e.g.
  // [TOOL_CALLS]); every other control token gives no text. Ids must be in the vocabulary.
  std::vector<int32_t> render_tokens;
};

// One generated token of one sample.
struct TokenEvent {
  int32_t sample_index = 0;
  int32_t token = 0;
  std::string text;         // the text this token releases (whole UTF-8, no stop-string bytes)
  int64_t text_offset = 0;  // bytes of the sample's decoded text before this token's
  float logprob = 0.0f;     // when logprobs were asked for
  std::vector<TokenLogprob> top;  // when top_logprobs > 0
};

struct SampleResult {
  FinishReason finish = FinishReason::kCancelled;
  // Text released when the sample ended, after its last on_token (held bytes of an incomplete
  // character or of a stop string's prefix that never completed).
  std::string tail;
};

struct GenerationTimings {  // seconds, measured on the step thread
  double queued = 0;        // Submit -> the first step that computed part of the request
  double prompt = 0;        // that step -> the first token sampled (prompt processing)
  double decode = 0;        // the first token -> the last token sampled
};

struct GenerationResult {
  Status status;                      // not OK: the request failed (no more tokens follow)
  std::vector<SampleResult> samples;  // per sample
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;     // over all samples (tokens that reached on_token)
  int64_t cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
  GenerationTimings timings;
};

struct GenerationCallbacks {
  // Each emitted token, in order per sample.
  std::function<void(const TokenEvent&)> on_token;
  // Exactly once per accepted request, after its last on_token (also after Cancel).
  std::function<void(const GenerationResult&)> on_done;
};

struct EngineStats {
  int32_t running = 0, waiting = 0;
  int32_t kv_blocks_used = 0, kv_blocks_total = 0;
  int64_t prefix_hit_tokens = 0, prefix_query_tokens = 0;
  int64_t prompt_tokens_total = 0, generated_tokens_total = 0;
  int64_t preemptions = 0, steps = 0;
  int64_t requests_finished = 0;
  // Speculative decoding: steps of a sequence that verified a draft, the draft tokens verified,
  // and how many of them were accepted.
  int64_t spec_steps = 0, spec_draft_tokens = 0, spec_accepted_tokens = 0;
  // SpecMethod::kDraftModel and kSelf: the draft's KV blocks in use and its pool's size.
  int32_t draft_kv_blocks_used = 0, draft_kv_blocks_total = 0;
  // The adaptive control's step cost model (spec_control.h): a, b and the draft's seconds per
  // draft token; the latest decode step's threshold (accepted tokens a draft row must yield); the
  // seconds spent in draft-model passes in all.
  double spec_fixed_seconds = 0, spec_row_seconds = 0, spec_draft_token_seconds = 0;
  double spec_threshold = 0, spec_draft_seconds_total = 0;
};

class Engine {
 public:
  // Starts the step thread. The runner must outlive the Engine and is used only by it.
  static Result<std::unique_ptr<Engine>> Create(ModelRunner* runner, const EngineOptions& options);
  ~Engine();  // Shutdown(0) if still running
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. InvalidArgument for bad fields (empty prompt, token ids outside the
  // vocabulary, a prompt + max_tokens that cannot fit the context or the KV pool, bad sampling
  // params, too many or too long stop strings), ResourceExhausted when max_queue requests are
  // already waiting (HTTP 429), Unavailable after Shutdown began.
  Result<RequestId> Submit(GenerationRequest request, GenerationCallbacks callbacks);

  // Ends a request in any state; its KV blocks are freed before the next step. on_done follows
  // with kCancelled. Unknown or finished ids are ignored.
  void Cancel(RequestId id);

  EngineStats stats() const;
  int64_t context_length() const;  // the longest prompt + max_tokens a request may have
  const ModelRunner& runner() const { return *runner_; }
  const Tokenizer& tokenizer() const { return runner_->tokenizer(); }

  // Stops accepting, lets running and queued requests finish for up to `grace`, cancels the rest,
  // and joins the step thread. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct Active;  // per-request state on the step thread
  struct Pending {
    RequestId id;
    GenerationRequest request;
    GenerationCallbacks callbacks;
    std::shared_ptr<const StopStrings> stops;
    std::shared_ptr<const grammar::MaskCache> masks;  // with request.grammar
    std::optional<grammar::Matcher> matcher;          // its start state, copied per sample
    std::chrono::steady_clock::time_point submitted;
  };
  struct Inbox {  // what one iteration takes from other threads
    std::deque<Pending> incoming;
    std::vector<RequestId> cancels;
    bool stopping = false;
    std::chrono::steady_clock::time_point deadline;
  };
  struct SampleJob;

  Engine(ModelRunner* runner, const EngineOptions& options, Scheduler scheduler, PagedKvStore store,
         std::unique_ptr<ModelRunner> self_draft, std::unique_ptr<ModelDrafter> model_drafter);

  // The step loop and its stages, in order (all on the step thread).
  void Loop();
  Inbox WaitForWork();
  void Admit(std::deque<Pending>& incoming);
  void ApplyCancels(const Inbox& inbox);
  Result<std::span<const float>> Execute(const SchedulerOutput& out, bool* aborted);
  void FailStep(const SchedulerOutput& out, const Status& status, bool aborted);
  void Sample(const SchedulerOutput& out, std::span<const float> logits);
  // The drafter's proposals for the sample jobs that asked for one, in one batch (of passes, for
  // a draft model).
  void ProposeDrafts();
  // Reports every job's tokens to its request (before ProposeDrafts, so that a draft model's
  // passes never delay a token the client could already have).
  void DeliverTokens();
  // Reports job.tokens[k] (on_token, or the sample's tail) and what the scheduler takes of it.
  SampledToken EmitToken(SampleJob& job, size_t k, std::chrono::steady_clock::time_point now);
  // The step's result for the scheduler (after ProposeDrafts: the drafts go with it); moves the
  // K/V of accepted tree paths to their positions.
  StepResult CollectOutputs(const SchedulerOutput& out);
  void FinishRequests();
  bool PublishStats(bool stopping);  // true: drained, the loop ends

  void FinishRequest(RequestId id, const Status& status, const std::vector<SampleOutput>* samples);
  // The model's vocabulary as the grammar module sees it (token bytes, end-of-generation ids),
  // built on first use.
  Result<std::shared_ptr<const grammar::TokenVocabulary>> GrammarVocabulary();
  // The mask cache of `grammar`: the one recent requests with the same Grammar object used
  // (grammar/grammar_cache.h gives requests with the same text the same object), else a new one.
  // At most kMaxMaskCaches are kept (each at most MaskCacheOptions::max_bytes of entries).
  std::shared_ptr<const grammar::MaskCache> MasksFor(
      std::shared_ptr<const grammar::TokenVocabulary> vocab,
      const std::shared_ptr<const grammar::Grammar>& grammar);
  static constexpr size_t kMaxMaskCaches = 8;
  // Masks out what the sample's grammar does not allow next: kNone when nothing is allowed,
  // kTooCostly when the mask ran past its work budget (grammar::MatcherOptions::max_mask_work).
  // `prefetched`: whether the sample's mask is already computed (TakePrefetchedMask).
  enum class GrammarMask { kSome, kNone, kTooCostly };
  enum class Prefetched { kNo, kFilled, kTooCostly };
  static GrammarMask ApplyGrammar(Active& a, size_t sample, std::span<float> logits,
                                  Prefetched prefetched);
  // A lazy grammar (request.grammar_triggers) that has not started: watches the unconstrained
  // token sampled from `logits` (the row, unmasked); when it fires a trigger whose part the grammar
  // refuses, samples again without such tokens. Returns the token taken, -1 for none (a dead end).
  static int32_t WatchTrigger(Active& a, size_t sample, int32_t token,
                              std::span<const float> logits, std::span<float> work);
  // Hands the step's constrained samples' masks to prefetch_ before the forward pass; FinishMasks
  // takes them back (before anything may destroy an Active). TakePrefetchedMask: whether the
  // sample's mask was prefetched this step (and within budget), once it is in place (a sampling
  // job, once per sample).
  void StartMasks(const SchedulerOutput& out);
  void FinishMasks();
  Prefetched TakePrefetchedMask(Active& a, size_t sample) const;
  // One sampling job: the entry's row(s), its draft tree followed while it matches, the next draft.
  void RunSampleJob(SampleJob& job, std::span<const float> logits, std::vector<float>& work) const;
  void ProposeDraft(SampleJob& job) const;
  void PublishSchedulerStats();  // REQUIRES: mu_ held

  ModelRunner* runner_;
  EngineOptions options_;
  Scheduler scheduler_;
  PagedKvStore store_;
  PrefillPacer pacer_;
  SpecCostModel spec_cost_;
  // Every sequence's verifications, by class of draft: where new sequences' estimates start
  // (SpecController::SeedFrom). Step thread only.
  SpecController spec_shared_{0};
  std::unique_ptr<ModelRunner> self_draft_;      // kSelf, kNgramSelf (before its drafter)
  std::unique_ptr<ModelDrafter> model_drafter_;  // kDraftModel, kSelf, kNgramSelf
  std::unique_ptr<Drafter> ngram_drafter_;       // kNgram, kNgramSelf
  std::unique_ptr<Drafter> chained_drafter_;     // kNgramSelf: ngram, then the model
  Drafter* drafter_ = nullptr;                   // the one asked for drafts; null: kNone
  // This step's SpecCostModel::Threshold for the method's drafts (ngram+self: for the n-gram
  // lookup's, which cost no pass), and for drafts of a model's passes (ngram+self only).
  double spec_threshold_ = 0;
  double spec_model_threshold_ = 0;
  bool spec_lone_ = false;  // the last step had one sequence's row: probes need no prior (Budget)
  double spec_draft_seconds_ = 0;  // in a draft model's passes, in all

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> submitted_;
  std::vector<RequestId> cancelled_;
  bool accepting_ = true;
  bool stop_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  RequestId next_id_ = 1;
  std::mutex vocab_mu_;  // guards vocab_ (built by the first Submit with a grammar), mask_caches_
  std::shared_ptr<const grammar::TokenVocabulary> vocab_;
  std::list<std::shared_ptr<const grammar::MaskCache>> mask_caches_;  // most recent first
  // The requests of the forward pass in flight that are not cancelled yet. When the last one is
  // cancelled, abort_step_ stops the pass at its next node: clients that all went away free their
  // KV blocks without waiting for a whole step.
  std::vector<RequestId> step_requests_;
  std::atomic<bool> abort_step_{false};
  EngineStats stats_;

  // Step thread only.
  std::unordered_map<RequestId, std::unique_ptr<Active>> active_;
  std::vector<SeqKvViews> views_;
  std::vector<BatchSeq> batch_;
  std::vector<std::vector<float>> work_;  // one logits buffer per pool thread
  std::vector<SampleJob> jobs_;
  std::vector<DraftRequest> draft_requests_;
  std::unique_ptr<MaskPrefetcher> prefetch_;
  std::vector<MaskPrefetcher::Task> prefetch_tasks_;
  std::vector<std::pair<Active*, size_t>> prefetch_owners_;  // per task: its sample
  int64_t step_prompt_tokens_ = 0, step_generated_tokens_ = 0;
  std::thread thread_;
};

}  // namespace gannet::engine
