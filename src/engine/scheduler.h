// Scheduler: iteration-level scheduling (Orca, OSDI'22) over the paged KV cache, in the manner of
// vLLM v1: there are no prefill and decode phases. Every sequence has tokens (prompt, then what it
// generated) and a count of tokens whose K/V is computed; each step closes part of that gap for as
// many sequences as fit in a token budget. That one rule covers decoding (gap 1), chunked prefill
// (a long prompt over several steps), prefix caching (cached blocks start the count above zero)
// and recomputation after preemption (the count falls back to zero).
//
// Each Schedule() returns one batch for one forward pass; the engine runs it, samples, and hands
// the sampled tokens to Update() before the next Schedule(). Order of service in a step:
//   1. running sequences that decode (one token each), oldest request first: decodes are never
//      starved by prefills;
//   2. running sequences still prefilling, a chunk each, within what is left of the budget;
//   3. waiting sequences, strictly first come first served: cached prefix first, then a chunk of
//      the rest. None is admitted in a step that had to preempt.
// When blocks run short, the newest running sequence not yet scheduled in this step is preempted:
// its blocks are freed and it goes back to the front of the waiting queue, to be recomputed later
// with its generated tokens appended to its prompt (its full blocks usually stay cached). A
// request fails only if one of its sequences alone could not fit in the whole pool (kError,
// with a ResourceExhausted status).
//
// A request with n > 1 samples runs one sequence through the prompt; the step that produces the
// prompt's last logits asks for n samples and Update() forks n - 1 sequences sharing its blocks.
//
// Speculative decoding (SpecInfer, ASPLOS'24): with a step's sampled tokens the engine may hand a
// decoding sequence a draft, a tree of proposed next tokens. The next step then computes the
// sequence's newest token and the whole tree in one pass (a tree-masked entry; drafts take only the
// budget that the step's prompt chunks leave and never cause a preemption; a draft is cut to what
// fits), and Update() takes the tokens the engine accepted along
// one path of the tree (1 to 1 + depth of them): the K/V of all but the last is kept, the slots of
// the rest of the tree are given back. The engine has moved the accepted path's K/V to consecutive
// slots by then (PagedKvStore::CopySlots).
//
// Thread-safety: none; driven by the engine's step thread (Cancel included, between steps).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "engine/finish_reason.h"
#include "engine/kv_cache_manager.h"

namespace gannet::engine {

using RequestId = uint64_t;

struct SchedulerOptions {
  int32_t max_num_batched_tokens = 512;  // tokens in one forward pass
  int32_t max_num_seqs = 64;             // sequences in one forward pass
  int32_t num_blocks = 0;                // KV block pool size
  int32_t block_size = 16;               // tokens per block
  bool enable_prefix_caching = true;     // off: every admitted sequence computes all its tokens
};

struct SchedulerRequest {
  RequestId id = 0;
  std::vector<int32_t> prompt;  // token ids (opaque here: the Engine checked them at Submit)
  int32_t max_tokens = 16;      // tokens to generate per sample, >= 1
  int32_t n = 1;                // samples, each its own sequence sharing the prompt's blocks
};

enum class SeqState { kWaiting, kRunning, kPreempted, kFinished };

// One sequence's share of a step: compute positions [start, start + tokens.size()).
struct ScheduledSeq {
  SeqId seq_id = 0;
  RequestId request_id = 0;
  int32_t sample_index = 0;
  int32_t start = 0;
  std::vector<int32_t> tokens;
  std::vector<BlockId> block_table;  // covers positions [0, start + tokens.size())
  bool needs_logits = false;         // logits of the last token: end of the prompt, or a decode
  int32_t num_samples = 0;           // tokens Update() expects: 0 without logits; n at a fork point
  // A speculative entry: tokens are the newest token then a draft tree, tree_parents[i] the index
  // of token i's parent (-1 for tokens[0]); logits are wanted for every token and Update() takes
  // 1..tokens.size() accepted tokens as the one sample. Empty otherwise.
  std::vector<int32_t> tree_parents;
  bool speculative() const { return !tree_parents.empty(); }
};

struct SchedulerOutput {
  uint64_t step = 0;
  std::vector<BlockCopy> copies;  // perform first, in order
  std::vector<ScheduledSeq> seqs;
  int32_t num_tokens = 0;        // sum of tokens over seqs
  std::vector<SeqId> preempted;  // sequences preempted while building this step
  bool empty() const { return seqs.empty(); }
};

struct SampledToken {
  int32_t token = 0;
  bool stop = false;     // the sample ends after this token (end of generation, a stop string)
  bool discard = false;  // with stop: the token is not part of the output (an end-of-generation id)
};

// Proposed next tokens of a sequence: tokens[i] continues the sequence's newest token when
// parents[i] == -1, else tokens[parents[i]] (parents[i] < i: a tree in which every node follows its
// parent). The first nodes should be the likeliest chain: a draft cut to fit keeps a prefix.
struct Draft {
  std::vector<int32_t> tokens;
  std::vector<int32_t> parents;
  // The drafter's evidence: for an n-gram draft, the length of the longest earlier match of the
  // sequence's end (1..); 0 for a model's draft (spec_control.h's draft classes).
  int32_t match = 0;
  bool empty() const { return tokens.empty(); }
};

// Most draft tokens of one sequence in one step (with its newest token, one 64-row tree).
constexpr int32_t kMaxDraftTokens = 63;

struct SeqStepResult {
  SeqId seq_id = 0;
  // Exactly num_samples of the scheduled entry; for a speculative entry the accepted tokens in
  // order (at least 1, at most its tokens; only the last may stop).
  std::vector<SampledToken> samples;
  Draft draft;  // optional: what to verify with this sequence's next decode
};

struct StepResult {
  uint64_t step = 0;
  std::vector<SeqStepResult> seqs;  // one per scheduled entry with needs_logits
};

struct SampleOutput {
  std::vector<int32_t> tokens;  // generated ids (a discarded token is not included)
  FinishReason reason = FinishReason::kLength;
  bool finished = false;
};

struct FinishedRequest {
  RequestId id = 0;
  Status status;                      // not OK: failed (one sample needs more KV than the pool)
  std::vector<SampleOutput> samples;  // index = sample index
};

struct SchedulerStats {
  int32_t num_running = 0;
  int32_t num_waiting = 0;  // includes preempted sequences awaiting recompute
  int32_t blocks_used = 0;
  int32_t blocks_total = 0;
  int32_t blocks_cached = 0;        // registered in the prefix cache (in use or evictable)
  int64_t prefix_query_tokens = 0;  // tokens of sequences admitted from the waiting queue
  int64_t prefix_hit_tokens = 0;    // of those, taken from the prefix cache
  int64_t num_preemptions = 0;
  int64_t num_steps = 0;
  int64_t num_scheduled_tokens = 0;  // over all steps
  int64_t num_draft_tokens = 0;      // draft tokens verified (speculative entries)
  int64_t num_accepted_tokens = 0;   // of those, accepted
  int64_t num_spec_steps = 0;        // speculative entries run
};

struct SeqSnapshot {
  SeqId id = 0;
  RequestId request_id = 0;
  SeqState state = SeqState::kWaiting;
  int32_t num_prompt = 0;  // original prompt length
  int32_t num_computed = 0;
  std::vector<int32_t> output;
};

class Scheduler {
 public:
  static Result<Scheduler> Create(const SchedulerOptions& options);

  Scheduler(Scheduler&&) = default;
  Scheduler& operator=(Scheduler&&) = default;

  // Queues a request. Errors (nothing queued) for an empty prompt, max_tokens < 1, n outside
  // [1, max_num_seqs] or a duplicate id. A request too long for the whole pool is accepted and
  // finished at once with kError and a ResourceExhausted status (see TakeFinished).
  Status AddRequest(SchedulerRequest request);

  // Chooses the next step. An empty output means nothing is left to run (no unfinished request);
  // no Update() follows it. REQUIRES: the previous non-empty step's Update() was applied.
  // prefill_limit(decodes) (>= 0) caps the prompt tokens (chunks of running and newly admitted
  // sequences) of a step that also decodes `decodes` sequences, so a long prompt cannot stall the
  // streams beside it for a whole budget's worth of compute (the serving engine sizes it from
  // measured step times, engine/prefill_pacer.h; 0 makes the step decode only). A step with no
  // decodes gives prompts the whole token budget.
  SchedulerOutput Schedule(const std::function<int32_t(int32_t decodes)>& prefill_limit);
  SchedulerOutput Schedule(int32_t prefill_limit = std::numeric_limits<int32_t>::max()) {
    GANNET_CHECK(prefill_limit >= 1);
    return Schedule([prefill_limit](int32_t) { return prefill_limit; });
  }

  // Applies the step's sampled tokens: appends them, stops samples (max_tokens, the
  // caller's stop flag), forks at n > 1, frees finished sequences. Entries of sequences cancelled
  // since Schedule() are ignored. On an error (wrong step, unknown or missing entries, wrong
  // sample counts) nothing is applied.
  Status Update(const StepResult& result);

  // Ends a request in any state and frees its blocks at once. NotFound for an unknown or already
  // finished request. Allowed between Schedule() and Update(): the freed blocks are handed out
  // only by a later Schedule(), and the step's results for the request are then ignored.
  Status Cancel(RequestId id);

  // Requests finished since the last call, in the order they finished.
  std::vector<FinishedRequest> TakeFinished();

  bool has_unfinished() const { return !requests_.empty(); }
  bool step_in_flight() const { return in_flight_.has_value(); }
  SchedulerStats stats() const;
  const KvCacheManager& kv() const { return kv_; }
  const SchedulerOptions& options() const { return options_; }
  // Live sequences of a request (empty when unknown or finished).
  std::vector<SeqSnapshot> Sequences(RequestId id) const;
  // A sequence's state; kFinished for one that finished, was cancelled or never existed.
  SeqState state(SeqId id) const;

  // KV invariants plus: running sequences hold exactly their computed (and in-flight) slots,
  // waiting ones hold none, queues and request records agree.
  Status CheckInvariants() const;

 private:
  struct Sequence {
    SeqId id = 0;
    RequestId request_id = 0;
    uint64_t arrival = 0;  // request arrival order; with sample_index, the priority
    int32_t sample_index = 0;
    int32_t num_prompt = 0;
    std::vector<int32_t> tokens;  // prompt then output
    int32_t num_computed = 0;
    int32_t pending_forks = 0;  // samples still to fork from this sequence at its prompt's end
    Draft draft;                // to verify with the next decode (dropped on preemption)
    SeqState state = SeqState::kWaiting;
    uint64_t scheduled_step = 0;
    int32_t num_output() const { return static_cast<int32_t>(tokens.size()) - num_prompt; }
  };
  struct InFlight {
    SeqId seq_id = 0;
    int32_t n = 0;
    int32_t num_samples = 0;
    bool needs_logits = false;
    bool speculative = false;
  };
  struct RequestState {
    SchedulerRequest spec;
    uint64_t arrival = 0;
    std::vector<SeqId> live;            // sequences not finished
    std::vector<SampleOutput> samples;  // filled as samples finish
    int32_t num_finished = 0;
  };

  explicit Scheduler(const SchedulerOptions& options, KvCacheManager kv)
      : options_(options), kv_(std::move(kv)) {}
  static bool Before(const Sequence* a, const Sequence* b);
  int32_t SeqsReserved() const;
  void InsertRunning(Sequence* s);
  void RemoveRunning(Sequence* s);
  void Preempt(Sequence* s, SchedulerOutput* out);
  // Schedule()'s stages: running sequences that decode (or prefill), then admissions.
  void ScheduleRunning(bool decodes, int32_t* budget, SchedulerOutput* out);
  // Allocates n slots for s, preempting the newest unscheduled running sequences as needed;
  // false when s itself had to be preempted.
  bool AllocateOrPreempt(Sequence* s, int32_t n, SchedulerOutput* out);
  void AdmitWaiting(int32_t* budget, SchedulerOutput* out);
  ScheduledSeq MakeEntry(const Sequence& s, int32_t n) const;
  // The draft of decoding sequence s cut to at most `max_nodes` tokens and to what its request may
  // still generate.
  int32_t DraftSize(const Sequence& s, int32_t max_nodes) const;
  void AddDraft(const Sequence& s, int32_t m, ScheduledSeq* e) const;
  // Extends the step's decodes with their sequences' drafts, within `budget`.
  void AddDrafts(int32_t* budget, SchedulerOutput* out);
  Status CheckResult(const InFlight& f, const SeqStepResult& r) const;
  // Appends a speculative entry's accepted tokens; false when s finished (and is gone).
  bool ApplySpeculative(Sequence* s, const std::vector<SampledToken>& samples);
  bool AppendSample(Sequence* s, SampledToken t);    // false: s finished (and is gone)
  void FinishSeq(Sequence* s, FinishReason reason);  // frees `s`; may complete its request
  Sequence* NewSequence(RequestState& r, int32_t sample_index);

  SchedulerOptions options_;
  KvCacheManager kv_;
  std::unordered_map<SeqId, std::unique_ptr<Sequence>> seqs_;
  std::unordered_map<RequestId, RequestState> requests_;
  std::vector<Sequence*> running_;  // by priority: oldest request first
  std::deque<Sequence*> waiting_;   // FCFS; preempted sequences come back at the front
  std::optional<std::vector<InFlight>> in_flight_;  // the step between Schedule() and Update()
  std::vector<FinishedRequest> finished_;
  SeqId next_seq_id_ = 1;
  uint64_t next_arrival_ = 0;
  uint64_t step_ = 0;
  int64_t prefix_query_tokens_ = 0, prefix_hit_tokens_ = 0, num_preemptions_ = 0,
          num_scheduled_tokens_ = 0, num_draft_tokens_ = 0, num_accepted_tokens_ = 0,
          num_spec_steps_ = 0;
};

}  // namespace gannet::engine
