#include "engine/engine.h"

#include <unistd.h>

#include <algorithm>
#include <limits>

#include "engine/engine_internal.h"
#include "engine/output_processor.h"

namespace gannet::engine {
namespace {

using Clock = std::chrono::steady_clock;

// Smallest prompt chunk beside decodes: a long prompt always advances, however slow the machine.
constexpr int32_t kMinPromptChunk = 4;

size_t AvailableMemoryBytes() {
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page)
                               : size_t{1} << 30;
}

}  // namespace

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

Result<std::unique_ptr<Engine>> Engine::Create(ModelRunner* runner, const EngineOptions& options) {
  if (runner == nullptr) return Status::InvalidArgument("no model runner");
  if (options.block_size <= 0 || options.max_batch_tokens <= 0 || options.max_seqs <= 0 ||
      options.max_queue < 0) {
    return Status::InvalidArgument(
        "engine options must be positive (block size, batch tokens, sequences)");
  }
  if (options.spec != SpecMethod::kNone &&
      (options.spec_max_tokens < 1 || options.spec_max_tokens > kMaxDraftTokens)) {
    return Status::InvalidArgument("spec_max_tokens must be in [1, " +
                                   std::to_string(kMaxDraftTokens) + "], got " +
                                   std::to_string(options.spec_max_tokens));
  }
  const models::ModelConfig& config = runner->config();
  const bool self = options.spec == SpecMethod::kSelf || options.spec == SpecMethod::kNgramSelf;
  std::unique_ptr<ModelRunner> self_draft;
  if (self) {
    GANNET_ASSIGN_OR_RETURN(self_draft,
                            LoadSelfDraft(*runner, {.n_tokens = options.spec_self_tokens,
                                                    .n_layers = options.spec_self_layers}));
  }
  ModelRunner* draft = nullptr;
  if (options.spec == SpecMethod::kDraftModel || self) {
    draft = self_draft != nullptr ? self_draft.get() : options.draft_model;
    if (draft == nullptr) return Status::InvalidArgument("no draft model loaded");
    GANNET_RETURN_IF_ERROR(CheckDraftVocabulary(*runner, *draft));
  }
  // A draft model holds K/V of what the target holds, plus each running sequence's draft chain:
  // its blocks come out of the same memory (n target blocks take n draft blocks with them).
  const int64_t chain_blocks =
      (options.spec_max_tokens + options.block_size - 1) / options.block_size + 1;
  const size_t per_block = PagedKvStore::BytesPerBlock(config, options.block_size);
  const size_t per_draft_block =
      draft != nullptr ? PagedKvStore::BytesPerBlock(draft->config(), options.block_size) : 0;
  const size_t draft_chain_bytes =
      per_draft_block * static_cast<size_t>(chain_blocks) * static_cast<size_t>(options.max_seqs);
  const int64_t blocks_per_ctx = (runner->n_ctx() + options.block_size - 1) / options.block_size;
  int64_t n_blocks = 0;
  if (options.kv_memory_bytes > 0) {
    n_blocks = options.kv_memory_bytes > draft_chain_bytes
                   ? static_cast<int64_t>((options.kv_memory_bytes - draft_chain_bytes) /
                                          (per_block + per_draft_block))
                   : 0;
  } else {
    // Speculation: a draft gets slots only while every running sequence keeps a free block, so
    // each sequence gets room for a full draft beside a full context.
    const int64_t draft_blocks =
        options.spec == SpecMethod::kNone
            ? 0
            : (options.spec_max_tokens + options.block_size - 1) / options.block_size + 2;
    n_blocks = static_cast<int64_t>(AvailableMemoryBytes() / 4 / (per_block + per_draft_block));
    n_blocks = std::min<int64_t>(n_blocks, (blocks_per_ctx + draft_blocks) * options.max_seqs);
  }
  if (n_blocks < blocks_per_ctx) {
    if (options.kv_memory_bytes > 0) {
      return Status::InvalidArgument(
          "KV memory of " + std::to_string(options.kv_memory_bytes >> 20) + " MiB holds " +
          std::to_string(n_blocks * options.block_size) + " tokens" +
          (draft != nullptr ? " (beside the draft model's K/V)" : "") +
          ", less than one full context (" + std::to_string(runner->n_ctx()) +
          "); give more memory or a smaller context");
    }
    n_blocks = blocks_per_ctx;
  }
  if (n_blocks > INT32_MAX / 2) n_blocks = INT32_MAX / 2;
  std::unique_ptr<ModelDrafter> drafter;
  if (draft != nullptr) {
    GANNET_ASSIGN_OR_RETURN(
        drafter, ModelDrafter::Create(
                     draft, {.n_blocks = static_cast<int32_t>(std::min<int64_t>(
                                 n_blocks + chain_blocks * options.max_seqs, INT32_MAX / 2)),
                             .block_size = options.block_size,
                             .max_batch_tokens = options.max_batch_tokens,
                             // Every layer: the head's argmax is the target's whenever that
                             // is among its tokens; an alternative never matches a greedy miss.
                             .branch_width =
                                 self_draft != nullptr && options.spec_self_layers == 0 ? 1 : 2}));
  }
  GANNET_ASSIGN_OR_RETURN(PagedKvStore store,
                          PagedKvStore::Create(config, n_blocks, options.block_size));
  GANNET_ASSIGN_OR_RETURN(
      Scheduler scheduler,
      Scheduler::Create(SchedulerOptions{.max_num_batched_tokens = options.max_batch_tokens,
                                         .max_num_seqs = options.max_seqs,
                                         .num_blocks = static_cast<int32_t>(n_blocks),
                                         .block_size = options.block_size,
                                         .enable_prefix_caching = options.prefix_caching}));
  std::unique_ptr<Engine> e(new Engine(runner, options, std::move(scheduler), std::move(store),
                                       std::move(self_draft), std::move(drafter)));
  e->stats_.kv_blocks_total = static_cast<int32_t>(n_blocks);
  // The self draft runs the target's first layers: their K/V are copied, not recomputed.
  if (e->self_draft_ != nullptr) GANNET_RETURN_IF_ERROR(e->model_drafter_->CopyKvFrom(&e->store_));
  if (e->model_drafter_ != nullptr) {
    e->stats_.draft_kv_blocks_total = e->model_drafter_->kv().pool().num_blocks();
  }
  if (options.spec == SpecMethod::kNgram || options.spec == SpecMethod::kNgramSelf) {
    e->ngram_drafter_ = MakeNgramDrafter();
  }
  if (options.spec == SpecMethod::kNgramSelf) {
    e->chained_drafter_ = MakeChainedDrafter(e->ngram_drafter_.get(), e->model_drafter_.get());
  }
  e->drafter_ = e->chained_drafter_ != nullptr ? e->chained_drafter_.get()
                : e->model_drafter_ != nullptr ? static_cast<Drafter*>(e->model_drafter_.get())
                                               : e->ngram_drafter_.get();
  e->thread_ = std::thread([p = e.get()] { p->Loop(); });
  return e;
}

Engine::Engine(ModelRunner* runner, const EngineOptions& options, Scheduler scheduler,
               PagedKvStore store, std::unique_ptr<ModelRunner> self_draft,
               std::unique_ptr<ModelDrafter> model_drafter)
    : runner_(runner),
      options_(options),
      scheduler_(std::move(scheduler)),
      store_(std::move(store)),
      pacer_(options.itl_factor, kMinPromptChunk,
             std::max(kMinPromptChunk, options.max_batch_tokens)),
      self_draft_(std::move(self_draft)),
      model_drafter_(std::move(model_drafter)),
      work_(static_cast<size_t>(std::max(1, runner->n_threads())),
            std::vector<float>(static_cast<size_t>(runner->config().n_vocab))),
      prefetch_(std::make_unique<MaskPrefetcher>(options.grammar_overlap)) {}

Engine::~Engine() { Shutdown(std::chrono::milliseconds(0)); }

int64_t Engine::context_length() const {
  return std::min<int64_t>(runner_->n_ctx(), store_.n_blocks() * store_.block_size());
}

Result<RequestId> Engine::Submit(GenerationRequest request, GenerationCallbacks callbacks) {
  const int64_t n_prompt = static_cast<int64_t>(request.prompt.size());
  if (n_prompt == 0) return Status::InvalidArgument("the prompt is empty (no tokens)");
  if (request.max_tokens < 1) return Status::InvalidArgument("max_tokens must be at least 1");
  if (request.n < 1 || request.n > options_.max_seqs) {
    return Status::InvalidArgument("n must be between 1 and " + std::to_string(options_.max_seqs));
  }
  if (request.top_logprobs > 20) return Status::InvalidArgument("top_logprobs must be at most 20");
  const int64_t limit = context_length();
  if (n_prompt + request.max_tokens > limit) {
    return Status::InvalidArgument("this model's context length is " + std::to_string(limit) +
                                   " tokens; the request has " + std::to_string(n_prompt) +
                                   " prompt tokens and asks for " +
                                   std::to_string(request.max_tokens) + " more");
  }
  // The one check of token ids against the vocabulary before they are queued (the forward pass
  // guards its embedding lookup on its own).
  const int32_t n_vocab = static_cast<int32_t>(runner_->config().n_vocab);
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= n_vocab) {
      return Status::InvalidArgument("token id " + std::to_string(t) +
                                     " is outside the vocabulary (" + std::to_string(n_vocab) +
                                     " tokens)");
    }
  }
  GANNET_RETURN_IF_ERROR(request.sampling.Validate(n_vocab));
  for (const std::vector<int32_t>* ids :
       {&request.render_tokens, &request.grammar_triggers.tokens}) {
    for (int32_t t : *ids) {
      if (t < 0 || t >= n_vocab) {
        return Status::InvalidArgument(
            std::string(ids == &request.render_tokens ? "render_tokens"
                                                      : "grammar trigger tokens") +
            ": token id " + std::to_string(t) + " is outside the vocabulary");
      }
    }
  }
  GANNET_ASSIGN_OR_RETURN(std::shared_ptr<const StopStrings> stops,
                          StopStrings::Compile(request.stop));
  std::shared_ptr<const grammar::MaskCache> masks;
  std::optional<grammar::Matcher> matcher;
  if (request.grammar != nullptr) {
    GANNET_ASSIGN_OR_RETURN(std::shared_ptr<const grammar::TokenVocabulary> vocab,
                            GrammarVocabulary());
    Result<grammar::Matcher> m = grammar::Matcher::Create(request.grammar);
    if (!m.ok()) return Status::InvalidArgument("grammar: " + m.status().message());
    matcher.emplace(std::move(m).value());
    masks = MasksFor(std::move(vocab), request.grammar);
    // The first mask, here on the caller's thread: a grammar too ambiguous to mask the start of
    // the output is refused before it takes a slot (later states are checked as they come).
    std::vector<uint32_t> first(masks->vocab().mask_words());
    if (!masks->FillNextTokenMask(*matcher, first))
      return GrammarTooCostly("at the start of the output");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepting_) return Status::Unavailable("the server is shutting down");
  if (static_cast<int64_t>(submitted_.size()) + stats_.waiting >= options_.max_queue) {
    return Status::ResourceExhausted("too many requests are waiting (" +
                                     std::to_string(options_.max_queue) + "); retry later");
  }
  const RequestId id = next_id_++;
  submitted_.push_back(Pending{.id = id,
                               .request = std::move(request),
                               .callbacks = std::move(callbacks),
                               .stops = stops->empty() ? nullptr : std::move(stops),
                               .masks = std::move(masks),
                               .matcher = std::move(matcher),
                               .submitted = Clock::now()});
  cv_.notify_one();
  return id;
}

void Engine::Cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.push_back(id);
  if (auto it = std::find(step_requests_.begin(), step_requests_.end(), id);
      it != step_requests_.end()) {
    step_requests_.erase(it);
    if (step_requests_.empty()) abort_step_.store(true, std::memory_order_relaxed);
  }
  cv_.notify_one();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Engine::Shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) {
      accepting_ = false;
      stop_ = true;
      drain_deadline_ = Clock::now() + grace;
    } else {
      drain_deadline_ = std::min(drain_deadline_, Clock::now() + grace);
    }
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void Engine::Loop() {
  for (;;) {
    Inbox inbox = WaitForWork();
    step_prompt_tokens_ = step_generated_tokens_ = 0;
    Admit(inbox.incoming);
    ApplyCancels(inbox);
    const SchedulerOutput out =
        scheduler_.has_unfinished()
            ? scheduler_.Schedule([this](int32_t decodes) { return pacer_.Limit(decodes); })
            : SchedulerOutput{};
    if (!out.empty()) {
      const Clock::time_point step_start = Clock::now();
      bool aborted = false;
      StartMasks(out);
      Result<std::span<const float>> logits = Execute(out, &aborted);
      if (!logits.ok()) {
        FinishMasks();
        FailStep(out, logits.status(), aborted);
      } else {
        // Decoding sequences and their rows (drafts included). A prompt's last chunk of one token
        // counts as a decode here, as it costs what one does, though the pacer's limit for this
        // step was asked before that chunk was scheduled.
        int32_t decodes = 0, decode_rows = 0;
        for (const ScheduledSeq& s : out.seqs) {
          if (s.needs_logits && (s.tokens.size() == 1 || s.speculative())) {
            ++decodes;
            decode_rows += static_cast<int32_t>(s.tokens.size());
          }
        }
        // Against the step without its draft rows: a draft row pays when it yields more tokens
        // per second than the step's own rows do (with the draft rows counted in, a step full of
        // drafts lowered its own bar). A prompt chunk's rows count as much as a decoding
        // sequence's: while a burst of prompts prefills, a draft row takes the place of a prompt
        // row, and a rejected one delays every sequence behind it.
        // ngram+self: n-gram draft rows cost no draft-model pass, so their bar leaves d out; the
        // self draft's rows get the bar with it (ProposeDraft).
        const int32_t own_rows = out.num_tokens - (decode_rows - decodes);
        const bool chained = options_.spec == SpecMethod::kNgramSelf;
        spec_model_threshold_ =
            options_.spec_adaptive ? spec_cost_.Threshold(own_rows, own_rows) : 0.0;
        spec_threshold_ = options_.spec_adaptive && chained
                              ? spec_cost_.Threshold(own_rows, own_rows, /*charge_draft=*/false)
                              : spec_model_threshold_;
        spec_lone_ = own_rows <= 1;
        Sample(out, *logits);
        FinishMasks();
        // The draft model's passes are timed apart: the pacer and the cost model's a and b
        // describe the target's passes; the draft's cost is charged to its draft rows.
        DeliverTokens();
        const Clock::time_point draft_start = Clock::now();
        if (drafter_ != nullptr) ProposeDrafts();
        const Clock::duration draft_time = Clock::now() - draft_start;
        const Status st = scheduler_.Update(CollectOutputs(out));
        GANNET_CHECK(st.ok());
        const double seconds = Seconds(Clock::now() - step_start - draft_time);
        pacer_.Observe(seconds, decode_rows, out.num_tokens - decode_rows);
        if (decode_rows == out.num_tokens) spec_cost_.Observe(out.num_tokens, seconds);
      }
    }
    FinishRequests();
    if (drafter_ != nullptr && drafter_->num_seqs() > 0) {
      // The draft's K/V and indexes go with their sequence: finished, cancelled or preempted.
      drafter_->ReleaseIf([this](SeqId id) { return scheduler_.state(id) != SeqState::kRunning; });
    }
    if (PublishStats(inbox.stopping)) break;
  }
}

Engine::Inbox Engine::WaitForWork() {
  Inbox inbox;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    return stop_ || !submitted_.empty() || !cancelled_.empty() || scheduler_.has_unfinished();
  });
  inbox.incoming.swap(submitted_);
  inbox.cancels.swap(cancelled_);
  inbox.stopping = stop_;
  inbox.deadline = drain_deadline_;
  return inbox;
}

void Engine::Admit(std::deque<Pending>& incoming) {
  const Tokenizer& tok = runner_->tokenizer();
  const int32_t n_vocab = static_cast<int32_t>(runner_->config().n_vocab);
  for (Pending& p : incoming) {
    auto a = std::make_unique<Active>();
    a->id = p.id;
    a->submitted = p.submitted;
    for (int32_t i = 0; i < p.request.n; ++i) {
      SamplingParams sp = p.request.sampling;
      if (sp.seed) sp.seed = *sp.seed + static_cast<uint64_t>(i);
      Sampler s(sp, n_vocab);
      for (int32_t t : p.request.prompt) s.Accept(t);
      a->samplers.push_back(std::move(s));
      a->outputs.emplace_back(tok, p.request.stop_at_eog, p.stops, p.request.render_tokens);
    }
    a->tails.resize(static_cast<size_t>(p.request.n));
    if (options_.spec != SpecMethod::kNone) {
      a->history.assign(static_cast<size_t>(p.request.n), p.request.prompt);
      SpecController spec(options_.spec_max_tokens);
      spec.SeedFrom(spec_shared_);
      a->spec.assign(static_cast<size_t>(p.request.n), spec);
    }
    if (p.masks != nullptr) {
      a->masks = std::move(p.masks);
      a->matchers.assign(static_cast<size_t>(p.request.n), *p.matcher);
      a->mask_words.assign(static_cast<size_t>(p.request.n),
                           std::vector<uint32_t>((static_cast<size_t>(n_vocab) + 31) / 32));
      a->failures.assign(static_cast<size_t>(p.request.n), Status::Ok());
      if (!p.request.grammar_triggers.empty()) {
        a->watches.assign(static_cast<size_t>(p.request.n),
                          grammar::TriggerWatch(std::make_shared<const grammar::GrammarTriggers>(
                              p.request.grammar_triggers)));
      }
      a->prefetched.assign(static_cast<size_t>(p.request.n), -1);
    }
    SchedulerRequest sr{.id = p.id,
                        .prompt = p.request.prompt,
                        .max_tokens = p.request.max_tokens,
                        .n = p.request.n};
    a->request = std::move(p.request);
    a->callbacks = std::move(p.callbacks);
    step_prompt_tokens_ += static_cast<int64_t>(sr.prompt.size());
    const Status st = scheduler_.AddRequest(std::move(sr));
    active_[p.id] = std::move(a);
    if (!st.ok()) FinishRequest(p.id, st, nullptr);
  }
}

void Engine::ApplyCancels(const Inbox& inbox) {
  bool cancelled_any = false;
  for (RequestId id : inbox.cancels) {
    if (active_.count(id) != 0) cancelled_any |= scheduler_.Cancel(id).ok();
  }
  if (cancelled_any) {
    // Freed blocks show in the stats (and /metrics) now, not after the next step.
    std::lock_guard<std::mutex> lock(mu_);
    PublishSchedulerStats();
  }
  if (inbox.stopping && Clock::now() >= inbox.deadline) {
    std::vector<RequestId> all;
    for (const auto& [id, a] : active_) all.push_back(id);
    for (RequestId id : all) (void)scheduler_.Cancel(id);
  }
}

Result<std::span<const float>> Engine::Execute(const SchedulerOutput& out, bool* aborted) {
  for (const BlockCopy& c : out.copies) store_.CopyBlock(c.src, c.dst);
  if (views_.size() < out.seqs.size()) views_.resize(out.seqs.size());
  batch_.clear();
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < out.seqs.size(); ++i) {
    const ScheduledSeq& s = out.seqs[i];
    store_.Assign(s.block_table, &views_[i]);
    if (auto it = active_.find(s.request_id); it != active_.end() && !it->second->scheduled_once) {
      it->second->scheduled_once = true;
      it->second->cached_prompt_tokens = s.start;
      it->second->first_scheduled = now;
    }
    batch_.push_back(BatchSeq{.tokens = s.tokens,
                              .n_past = s.start,
                              .kv = views_[i].layers,
                              .logits = s.needs_logits,
                              .tree_parents = s.tree_parents});
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    step_requests_.clear();
    for (const ScheduledSeq& s : out.seqs) {
      if (active_.count(s.request_id) != 0 &&
          std::find(step_requests_.begin(), step_requests_.end(), s.request_id) ==
              step_requests_.end() &&
          std::find(cancelled_.begin(), cancelled_.end(), s.request_id) == cancelled_.end()) {
        step_requests_.push_back(s.request_id);
      }
    }
    abort_step_.store(step_requests_.empty(), std::memory_order_relaxed);
  }
  if (options_.before_step) options_.before_step();
  Result<std::span<const float>> logits =
      runner_->Execute(batch_, &abort_step_, options_.step_observer);
  std::lock_guard<std::mutex> lock(mu_);
  step_requests_.clear();
  *aborted = abort_step_.exchange(false, std::memory_order_relaxed) && !logits.ok();
  return logits;
}

void Engine::FailStep(const SchedulerOutput& out, const Status& status, bool aborted) {
  // A failed forward pass fails the requests in it; the step is still completed so that the
  // scheduler's bookkeeping stays consistent (their sequences are cancelled first, which also
  // drops the partly written K/V: nothing of this step was committed to the prefix cache).
  // An aborted pass had only cancelled requests: they finish as cancelled, in FinishRequests.
  std::vector<RequestId> failed;
  for (const ScheduledSeq& s : out.seqs) {
    if (active_.count(s.request_id) != 0 && scheduler_.Cancel(s.request_id).ok())
      failed.push_back(s.request_id);
  }
  (void)scheduler_.Update(StepResult{.step = out.step});
  if (aborted) return;
  for (RequestId id : failed) FinishRequest(id, status, nullptr);
}

void Engine::Sample(const SchedulerOutput& out, std::span<const float> logits) {
  // One job per (sequence, sample) on the runner's pool: each job has its own Sampler and
  // OutputProcessor, so jobs are independent (with 16+ sequences and a large vocabulary this is a
  // real share of the step). DeliverTokens then reports them in order on this thread.
  jobs_.clear();
  size_t row = 0;
  for (const ScheduledSeq& s : out.seqs) {
    if (!s.needs_logits) continue;
    auto it = active_.find(s.request_id);
    for (int32_t k = 0; k < s.num_samples; ++k) {
      jobs_.push_back({.row = row,
                       .entry = &s,
                       .active = it == active_.end() ? nullptr : it->second.get(),
                       .index = s.sample_index + k});
    }
    row += s.speculative() ? s.tokens.size() : 1;
  }
  auto sample = [&](int64_t begin, int64_t end, int thread) {
    for (int64_t j = begin; j < end; ++j) {
      SampleJob& job = jobs_[static_cast<size_t>(j)];
      if (job.active != nullptr) RunSampleJob(job, logits, work_[static_cast<size_t>(thread)]);
    }
  };
  if (jobs_.size() > 1 && work_.size() > 1) {
    runner_->pool().ParallelFor(static_cast<int64_t>(jobs_.size()), sample);
  } else {
    sample(0, static_cast<int64_t>(jobs_.size()), 0);
  }
}

void Engine::RunSampleJob(SampleJob& job, std::span<const float> logits,
                          std::vector<float>& w) const {
  const size_t n_vocab = static_cast<size_t>(runner_->config().n_vocab);
  Active& a = *job.active;
  const size_t i = static_cast<size_t>(job.index);
  const ScheduledSeq& e = *job.entry;
  int32_t node = 0;  // the tree node whose logits row gives the next token
  for (;;) {
    SampleJob::Token t;
    const std::span<const float> lg = logits.subspan((job.row + node) * n_vocab, n_vocab);
    const bool constrained = a.Constrained(i);
    // The sample reads a copy where something changes the logits (a grammar's mask, logit_bias,
    // penalties) and the row itself otherwise: a vocabulary-sized copy per sample saved (1 MiB
    // for 262144 tokens, per sequence per step).
    const bool copy = constrained || a.masks != nullptr || a.samplers[i].ChangesLogits();
    if (copy) std::copy(lg.begin(), lg.end(), w.begin());
    const std::span<const float> seen = copy ? std::span<const float>(w) : lg;
    const GrammarMask gm =
        constrained ? ApplyGrammar(a, i, w, node == 0 ? TakePrefetchedMask(a, i) : Prefetched::kNo)
                    : GrammarMask::kSome;
    if (gm != GrammarMask::kSome) {
      // The grammar allows nothing here (a dead end), or the mask cost more than its budget (the
      // request then fails): the sample ends without a token.
      if (gm == GrammarMask::kTooCostly) {
        a.failures[i] = GrammarTooCostly("partway through the output");
      }
      t.output = TokenOutput{.emitted = false, .finished = true};
    } else {
      t.token = copy ? a.samplers[i].Sample(w) : a.samplers[i].SampleUnchanged(lg);
      if (constrained) {
        const bool accepted = a.masks->vocab().AcceptToken(&a.matchers[i], t.token);
        GANNET_CHECK(accepted);  // the mask allowed it
      } else if (a.masks != nullptr) {
        t.token = WatchTrigger(a, i, t.token, lg, w);
      }
      if (t.token < 0) {  // the lazy grammar's dead end: as above
        t = SampleJob::Token{.output = TokenOutput{.emitted = false, .finished = true}};
      } else {
        if (a.request.top_logprobs >= 0) {
          TopLogprobs(seen, t.token, a.request.top_logprobs, t.top, &t.logprob);
        }
        t.output = a.outputs[i].Process(t.token);
        if (t.output.emitted) a.samplers[i].Accept(t.token);
      }
    }
    job.tokens.push_back(std::move(t));
    const SampleJob::Token& last = job.tokens.back();
    if (last.output.finished || !e.speculative()) break;
    // Follow the draft node that guessed this token, if any: its row holds the next logits.
    int32_t child = -1;
    for (size_t c = static_cast<size_t>(node) + 1; c < e.tokens.size() && child < 0; ++c) {
      if (e.tree_parents[c] == node && e.tokens[c] == last.token) child = static_cast<int32_t>(c);
    }
    if (child < 0) break;
    // Its K/V (slot start + child) belongs at the token's position.
    const int64_t to = e.start + static_cast<int64_t>(job.tokens.size());
    if (e.start + child != to) job.moves.emplace_back(e.start + child, to);
    node = child;
  }
  if (!a.spec.empty()) ProposeDraft(job);
}

void Engine::DeliverTokens() {
  const Clock::time_point now = Clock::now();
  for (SampleJob& job : jobs_) {
    job.emitted.clear();
    if (job.active == nullptr) continue;
    for (size_t t = 0; t < job.tokens.size(); ++t) job.emitted.push_back(EmitToken(job, t, now));
  }
}

StepResult Engine::CollectOutputs(const SchedulerOutput& out) {
  StepResult result{.step = out.step};
  size_t next_job = 0;
  for (const ScheduledSeq& s : out.seqs) {
    if (!s.needs_logits) continue;
    SeqStepResult sr{.seq_id = s.seq_id};
    for (int32_t k = 0; k < s.num_samples; ++k) {
      SampleJob& job = jobs_[next_job++];
      if (job.active == nullptr) {
        sr.samples.push_back(SampledToken{.token = 0, .stop = true});
        continue;
      }
      if (!job.moves.empty()) store_.CopySlots(s.block_table, job.moves);
      sr.samples.insert(sr.samples.end(), job.emitted.begin(), job.emitted.end());
      sr.draft = std::move(job.draft);
    }
    result.seqs.push_back(std::move(sr));
  }
  return result;
}

SampledToken Engine::EmitToken(SampleJob& job, size_t k, Clock::time_point now) {
  Active& a = *job.active;
  SampleJob::Token& t = job.tokens[k];
  if (a.first_token == Clock::time_point{}) a.first_token = now;
  a.last_token = now;
  if (!t.output.emitted) {
    a.tails[static_cast<size_t>(job.index)] += t.output.text;
  } else {
    ++a.completion_tokens;
    ++step_generated_tokens_;
    if (a.callbacks.on_token) {
      TokenEvent ev{.sample_index = job.index,
                    .token = t.token,
                    .text = std::move(t.output.text),
                    .text_offset = t.output.text_offset};
      if (a.request.top_logprobs >= 0) {
        ev.logprob = t.logprob;
        ev.top = std::move(t.top);
      }
      a.callbacks.on_token(ev);
    }
  }
  return SampledToken{.token = t.token, .stop = t.output.finished, .discard = !t.output.emitted};
}

void Engine::FinishRequests() {
  for (FinishedRequest& f : scheduler_.TakeFinished()) FinishRequest(f.id, f.status, &f.samples);
}

void Engine::FinishRequest(RequestId id, const Status& status,
                           const std::vector<SampleOutput>* samples) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& a = *it->second;
  Status final_status = status;
  for (const Status& f : a.failures) {  // empty without a grammar
    if (final_status.ok() && !f.ok()) final_status = f;
  }
  GenerationResult r{.status = final_status,
                     .prompt_tokens = static_cast<int64_t>(a.request.prompt.size()),
                     .completion_tokens = a.completion_tokens,
                     .cached_prompt_tokens = a.cached_prompt_tokens};
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    FinishReason f = FinishReason::kError;
    if (samples != nullptr && i < samples->size()) f = (*samples)[i].reason;
    r.samples.push_back({.finish = final_status.ok() ? f : FinishReason::kError,
                         .tail = a.tails[i] + a.outputs[i].Finish()});
  }
  if (a.scheduled_once) {
    r.timings.queued = Seconds(a.first_scheduled - a.submitted);
    if (a.first_token != Clock::time_point{}) {
      r.timings.prompt = Seconds(a.first_token - a.first_scheduled);
      r.timings.decode = Seconds(a.last_token - a.first_token);
    }
  }
  if (a.callbacks.on_done) a.callbacks.on_done(r);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.requests_finished;
  }
  active_.erase(it);
}

void Engine::PublishSchedulerStats() {
  const SchedulerStats ss = scheduler_.stats();
  stats_.running = ss.num_running;
  stats_.waiting = ss.num_waiting;
  stats_.kv_blocks_used = ss.blocks_used;
  stats_.kv_blocks_total = ss.blocks_total;
  stats_.prefix_hit_tokens = ss.prefix_hit_tokens;
  stats_.prefix_query_tokens = ss.prefix_query_tokens;
  stats_.preemptions = ss.num_preemptions;
  stats_.steps = ss.num_steps;
  stats_.spec_steps = ss.num_spec_steps;
  stats_.spec_draft_tokens = ss.num_draft_tokens;
  stats_.spec_accepted_tokens = ss.num_accepted_tokens;
  if (model_drafter_ != nullptr) stats_.draft_kv_blocks_used = model_drafter_->blocks_used();
  stats_.spec_fixed_seconds = spec_cost_.fixed_seconds();
  stats_.spec_row_seconds = spec_cost_.per_row_seconds();
  stats_.spec_draft_token_seconds = spec_cost_.draft_seconds_per_token();
  stats_.spec_threshold = spec_threshold_;
  stats_.spec_draft_seconds_total = spec_draft_seconds_;
}

bool Engine::PublishStats(bool stopping) {
  std::lock_guard<std::mutex> lock(mu_);
  PublishSchedulerStats();
  stats_.prompt_tokens_total += step_prompt_tokens_;
  stats_.generated_tokens_total += step_generated_tokens_;
  return stopping && active_.empty() && submitted_.empty() && !scheduler_.has_unfinished();
}

}  // namespace gannet::engine
