#include "engine/serving.h"

#include <unistd.h>

#include <algorithm>

namespace gannet::engine {
namespace {

using Clock = std::chrono::steady_clock;

// Smallest prompt chunk beside decodes: a long prompt always advances, however slow the machine.
constexpr int32_t kMinPromptChunk = 4;

SampleFinish FromStopReason(StopReason r) {
  switch (r) {
    case StopReason::kNone:
    case StopReason::kLength: return SampleFinish::kLength;
    case StopReason::kEos:
    case StopReason::kStopRequested: return SampleFinish::kStop;
    case StopReason::kCancelled: return SampleFinish::kCancelled;
    case StopReason::kTooLong: return SampleFinish::kError;
  }
  return SampleFinish::kError;
}

size_t AvailableMemoryBytes() {
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{1} << 30;
}

}  // namespace

const char* SampleFinishName(SampleFinish f) {
  switch (f) {
    case SampleFinish::kLength: return "length";
    case SampleFinish::kStop: return "stop";
    case SampleFinish::kContextFull: return "length";
    case SampleFinish::kCancelled: return "cancelled";
    case SampleFinish::kError: return "error";
  }
  return "error";
}

struct ServingEngine::Active {
  ServingRequestId id = 0;
  ServingRequest request;
  ServingCallbacks callbacks;
  std::vector<Sampler> samplers;  // one per sample
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // positions its first step found in the prefix cache
  bool scheduled_once = false;
};

Result<std::unique_ptr<ServingEngine>> ServingEngine::Create(Engine* engine, const ServingOptions& options) {
  if (engine == nullptr) return Status::InvalidArgument("no engine");
  if (options.block_size <= 0 || options.max_batch_tokens <= 0 || options.max_seqs <= 0 || options.max_queue < 0) {
    return Status::InvalidArgument("serving options must be positive (block size, batch tokens, sequences)");
  }
  const models::ModelConfig& config = engine->config();
  const size_t per_block = PagedKvStore::BytesPerBlock(config, options.block_size);
  const int64_t blocks_per_ctx = (engine->n_ctx() + options.block_size - 1) / options.block_size;
  int64_t n_blocks = 0;
  if (options.kv_memory_bytes > 0) {
    n_blocks = static_cast<int64_t>(options.kv_memory_bytes / per_block);
  } else {
    n_blocks = static_cast<int64_t>(AvailableMemoryBytes() / 4 / per_block);
    n_blocks = std::min<int64_t>(n_blocks, blocks_per_ctx * options.max_seqs);
  }
  if (n_blocks < blocks_per_ctx) {
    if (options.kv_memory_bytes > 0) {
      return Status::InvalidArgument("KV memory of " + std::to_string(options.kv_memory_bytes >> 20) +
                                     " MiB holds " + std::to_string(n_blocks * options.block_size) +
                                     " tokens, less than one full context (" + std::to_string(engine->n_ctx()) +
                                     "); give more memory or a smaller context");
    }
    n_blocks = blocks_per_ctx;
  }
  if (n_blocks > INT32_MAX / 2) n_blocks = INT32_MAX / 2;
  GANNET_ASSIGN_OR_RETURN(PagedKvStore store, PagedKvStore::Create(config, n_blocks, options.block_size));
  GANNET_ASSIGN_OR_RETURN(Scheduler scheduler,
                          Scheduler::Create(SchedulerOptions{.max_num_batched_tokens = options.max_batch_tokens,
                                                             .max_num_seqs = options.max_seqs,
                                                             .num_blocks = static_cast<int32_t>(n_blocks),
                                                             .block_size = options.block_size,
                                                             .enable_prefix_caching = options.prefix_caching}));
  std::unique_ptr<ServingEngine> s(new ServingEngine(engine, options, std::move(scheduler), std::move(store)));
  s->stats_.kv_blocks_total = static_cast<int32_t>(n_blocks);
  s->thread_ = std::thread([p = s.get()] { p->Loop(); });
  return s;
}

ServingEngine::ServingEngine(Engine* engine, const ServingOptions& options, Scheduler scheduler, PagedKvStore store)
    : engine_(engine),
      options_(options),
      scheduler_(std::move(scheduler)),
      store_(std::move(store)),
      pacer_(options.itl_factor, kMinPromptChunk, std::max(kMinPromptChunk, options.max_batch_tokens)) {}

ServingEngine::~ServingEngine() { Shutdown(std::chrono::milliseconds(0)); }

int64_t ServingEngine::context_length() const {
  return std::min<int64_t>(engine_->n_ctx(), store_.n_blocks() * store_.block_size());
}

Result<ServingRequestId> ServingEngine::Submit(ServingRequest request, ServingCallbacks callbacks) {
  const int64_t n_prompt = static_cast<int64_t>(request.prompt.size());
  if (n_prompt == 0) return Status::InvalidArgument("the prompt is empty (no tokens)");
  if (request.max_tokens < 1) return Status::InvalidArgument("max_tokens must be at least 1");
  if (request.n < 1 || request.n > options_.max_seqs) {
    return Status::InvalidArgument("n must be between 1 and " + std::to_string(options_.max_seqs));
  }
  if (request.top_logprobs > 20) return Status::InvalidArgument("top_logprobs must be at most 20");
  const int64_t limit = context_length();
  if (n_prompt + request.max_tokens > limit) {
    return Status::InvalidArgument("this model's context length is " + std::to_string(limit) + " tokens; the request has " +
                                   std::to_string(n_prompt) + " prompt tokens and asks for " +
                                   std::to_string(request.max_tokens) + " more");
  }
  const int32_t n_vocab = static_cast<int32_t>(engine_->config().n_vocab);
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= n_vocab) {
      return Status::InvalidArgument("token id " + std::to_string(t) + " is outside the vocabulary (" +
                                     std::to_string(n_vocab) + " tokens)");
    }
  }
  GANNET_RETURN_IF_ERROR(request.sampling.Validate(n_vocab));
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepting_) return Status::Unavailable("the server is shutting down");
  if (static_cast<int64_t>(submitted_.size()) + stats_.waiting >= options_.max_queue) {
    return Status::ResourceExhausted("too many requests are waiting (" + std::to_string(options_.max_queue) +
                                     "); retry later");
  }
  const ServingRequestId id = next_id_++;
  submitted_.push_back(Pending{id, std::move(request), std::move(callbacks)});
  cv_.notify_one();
  return id;
}

void ServingEngine::Cancel(ServingRequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.push_back(id);
  if (auto it = std::find(step_requests_.begin(), step_requests_.end(), id); it != step_requests_.end()) {
    step_requests_.erase(it);
    if (step_requests_.empty()) abort_step_.store(true, std::memory_order_relaxed);
  }
  cv_.notify_one();
}

ServingStats ServingEngine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void ServingEngine::Shutdown(std::chrono::milliseconds grace) {
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

void ServingEngine::Loop() {
  const Tokenizer& tok = engine_->tokenizer();
  const int64_t n_vocab = engine_->config().n_vocab;
  std::vector<SeqKvViews> views;
  std::vector<BatchSeq> batch;
  // One logits buffer per pool thread for the parallel sampling below.
  std::vector<std::vector<float>> work(static_cast<size_t>(std::max(1, engine_->n_threads())),
                                       std::vector<float>(static_cast<size_t>(n_vocab)));
  struct SampleJob {
    size_t row = 0;              // logits row
    Active* active = nullptr;    // nullptr: the request was cancelled since Schedule()
    int32_t index = 0;           // sample index within the request
    int32_t token = 0;
    float logprob = 0.0f;
    std::vector<TokenLogprob> top;
  };
  std::vector<SampleJob> jobs;

  auto finish_request = [&](ServingRequestId id, const Status& status, std::vector<SampleFinish> finish,
                            const std::vector<SampleOutput>* samples) {
    auto it = active_.find(id);
    if (it == active_.end()) return;
    Active& a = *it->second;
    ServingResult r;
    r.status = status;
    r.finish = std::move(finish);
    r.prompt_tokens = static_cast<int64_t>(a.request.prompt.size());
    r.completion_tokens = a.completion_tokens;
    r.cached_prompt_tokens = a.cached_prompt_tokens;
    if (samples != nullptr) {
      int64_t total = 0;
      for (const SampleOutput& s : *samples) total += static_cast<int64_t>(s.tokens.size());
      r.completion_tokens = total;
    }
    if (a.callbacks.on_done) a.callbacks.on_done(r);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.requests_finished;
    }
    active_.erase(it);
  };

  // REQUIRES: mu_ held.
  auto publish_scheduler_stats = [&] {
    const SchedulerStats ss = scheduler_.stats();
    stats_.running = ss.num_running;
    stats_.waiting = ss.num_waiting;
    stats_.kv_blocks_used = ss.blocks_used;
    stats_.kv_blocks_total = ss.blocks_total;
    stats_.prefix_hit_tokens = ss.prefix_hit_tokens;
    stats_.prefix_query_tokens = ss.prefix_query_tokens;
    stats_.preemptions = ss.num_preemptions;
    stats_.steps = ss.num_steps;
  };

  for (;;) {
    std::deque<Pending> incoming;
    std::vector<ServingRequestId> cancels;
    int64_t step_prompt_tokens = 0, step_generated_tokens = 0;
    bool stopping = false;
    Clock::time_point deadline;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_ || !submitted_.empty() || !cancelled_.empty() || scheduler_.has_unfinished();
      });
      incoming.swap(submitted_);
      cancels.swap(cancelled_);
      stopping = stop_;
      deadline = drain_deadline_;
    }
    for (Pending& p : incoming) {
      SchedulerRequest sr{.id = p.id, .prompt = p.request.prompt, .max_tokens = p.request.max_tokens,
                          .eos_ids = p.request.stop_at_eog ? tok.end_of_generation_ids() : std::vector<int32_t>{},
                          .n = p.request.n};
      auto a = std::make_unique<Active>();
      a->id = p.id;
      for (int32_t i = 0; i < p.request.n; ++i) {
        SamplingParams sp = p.request.sampling;
        if (sp.seed) sp.seed = *sp.seed + static_cast<uint64_t>(i);
        Sampler s(sp, static_cast<int32_t>(n_vocab));
        for (int32_t t : p.request.prompt) s.Accept(t);
        a->samplers.push_back(std::move(s));
      }
      a->request = std::move(p.request);
      a->callbacks = std::move(p.callbacks);
      step_prompt_tokens += static_cast<int64_t>(sr.prompt.size());
      const Status st = scheduler_.AddRequest(std::move(sr));
      active_[p.id] = std::move(a);
      if (!st.ok()) finish_request(p.id, st, std::vector<SampleFinish>(active_[p.id]->request.n, SampleFinish::kError), nullptr);
    }
    bool cancelled_any = false;
    for (ServingRequestId id : cancels) {
      if (active_.count(id) != 0) cancelled_any |= scheduler_.Cancel(id).ok();
    }
    if (cancelled_any) {
      // Freed blocks show in the stats (and /metrics) now, not after the next step.
      std::lock_guard<std::mutex> lock(mu_);
      publish_scheduler_stats();
    }
    if (stopping && Clock::now() >= deadline) {
      std::vector<ServingRequestId> all;
      for (const auto& [id, a] : active_) all.push_back(id);
      for (ServingRequestId id : all) (void)scheduler_.Cancel(id);
    }

    SchedulerOutput out;
    if (scheduler_.has_unfinished()) out = scheduler_.Schedule(pacer_.Limit());
    if (!out.empty()) {
      const Clock::time_point step_start = Clock::now();
      for (const BlockCopy& c : out.copies) store_.CopyBlock(c.src, c.dst);
      if (views.size() < out.seqs.size()) views.resize(out.seqs.size());
      batch.clear();
      for (size_t i = 0; i < out.seqs.size(); ++i) {
        const ScheduledSeq& s = out.seqs[i];
        store_.Assign(s.block_table, &views[i]);
        if (auto it = active_.find(s.request_id); it != active_.end() && !it->second->scheduled_once) {
          it->second->scheduled_once = true;
          it->second->cached_prompt_tokens = s.start;
        }
        batch.push_back(BatchSeq{.tokens = s.tokens, .n_past = s.start, .kv = views[i].layers,
                                 .logits = s.needs_logits});
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        step_requests_.clear();
        for (const ScheduledSeq& s : out.seqs) {
          if (active_.count(s.request_id) != 0 &&
              std::find(step_requests_.begin(), step_requests_.end(), s.request_id) == step_requests_.end() &&
              std::find(cancelled_.begin(), cancelled_.end(), s.request_id) == cancelled_.end()) {
            step_requests_.push_back(s.request_id);
          }
        }
        abort_step_.store(step_requests_.empty(), std::memory_order_relaxed);
      }
      Result<std::span<const float>> logits = engine_->EvaluateBatch(batch, &abort_step_);
      bool aborted = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        step_requests_.clear();
        aborted = abort_step_.exchange(false, std::memory_order_relaxed) && !logits.ok();
      }
      StepResult result{.step = out.step};
      if (!logits.ok()) {
        std::vector<RequestId> failed;
        // A failed forward pass fails the requests in it; the step is still completed so that the
        // scheduler's bookkeeping stays consistent (their sequences are cancelled first, which also
        // drops the partly written K/V: nothing of this step was committed to the prefix cache).
        // An aborted pass had only cancelled requests: they finish as cancelled, below.
        for (const ScheduledSeq& s : out.seqs) {
          if (active_.count(s.request_id) != 0 && scheduler_.Cancel(s.request_id).ok()) failed.push_back(s.request_id);
        }
        (void)scheduler_.Update(result);
        if (aborted) failed.clear();
        for (RequestId id : failed) {
          const int32_t n = active_.at(id)->request.n;
          finish_request(id, logits.status(), std::vector<SampleFinish>(n, SampleFinish::kError), nullptr);
        }
      } else {
        // Sampling, one job per (sequence, sample) on the engine's pool: each job has its own
        // Sampler, so jobs are independent (with 16+ sequences and a large vocabulary this is a
        // real share of the step). The callbacks then run here, in order, on the step thread.
        jobs.clear();
        size_t row = 0;
        for (const ScheduledSeq& s : out.seqs) {
          if (!s.needs_logits) continue;
          auto it = active_.find(s.request_id);
          for (int32_t k = 0; k < s.num_samples; ++k) {
            jobs.push_back({.row = row, .active = it == active_.end() ? nullptr : it->second.get(),
                            .index = s.sample_index + k});
          }
          ++row;
        }
        auto sample = [&](int64_t begin, int64_t end, int thread) {
          std::vector<float>& w = work[static_cast<size_t>(thread)];
          for (int64_t j = begin; j < end; ++j) {
            SampleJob& job = jobs[static_cast<size_t>(j)];
            if (job.active == nullptr) continue;
            const std::span<const float> lg =
                logits->subspan(job.row * static_cast<size_t>(n_vocab), static_cast<size_t>(n_vocab));
            std::copy(lg.begin(), lg.end(), w.begin());
            job.token = job.active->samplers[static_cast<size_t>(job.index)].Sample(w);
            if (job.active->request.top_logprobs >= 0) {
              TopLogprobs(w, job.token, job.active->request.top_logprobs, job.top, &job.logprob);
            }
          }
        };
        if (jobs.size() > 1 && work.size() > 1) {
          engine_->pool().ParallelFor(static_cast<int64_t>(jobs.size()), sample);
        } else {
          sample(0, static_cast<int64_t>(jobs.size()), 0);
        }
        size_t next_job = 0;
        for (const ScheduledSeq& s : out.seqs) {
          if (!s.needs_logits) continue;
          SeqStepResult sr{.seq_id = s.seq_id};
          for (int32_t k = 0; k < s.num_samples; ++k) {
            SampleJob& job = jobs[next_job++];
            if (job.active == nullptr) {
              sr.samples.push_back(SampledToken{.token = 0, .stop = true});
              continue;
            }
            Active& a = *job.active;
            const int32_t t = job.token;
            SampledToken st{.token = t};
            if (!(a.request.stop_at_eog && tok.IsEndOfGeneration(t))) {
              a.samplers[static_cast<size_t>(job.index)].Accept(t);
              ++a.completion_tokens;
              ++step_generated_tokens;
              TokenEvent ev{.sample_index = job.index, .token = t};
              if (a.request.top_logprobs >= 0) {
                ev.logprob = job.logprob;
                ev.top = std::move(job.top);
              }
              if (a.callbacks.on_token && !a.callbacks.on_token(ev)) st.stop = true;
            }
            sr.samples.push_back(st);
          }
          result.seqs.push_back(std::move(sr));
        }
        const Status st = scheduler_.Update(result);
        GANNET_CHECK(st.ok());
        int32_t decodes = 0;
        for (const ScheduledSeq& s : out.seqs) decodes += s.tokens.size() == 1 && s.needs_logits ? 1 : 0;
        pacer_.Observe(std::chrono::duration<double>(Clock::now() - step_start).count(), decodes,
                       out.num_tokens - decodes);
      }
    }
    for (FinishedRequest& f : scheduler_.TakeFinished()) {
      std::vector<SampleFinish> finish;
      bool too_long = false;
      for (const SampleOutput& s : f.samples) {
        finish.push_back(FromStopReason(s.reason));
        too_long |= s.reason == StopReason::kTooLong;
      }
      const Status st = too_long ? Status::ResourceExhausted("the request needs more KV cache than the pool holds")
                                 : Status::Ok();
      finish_request(f.id, st, std::move(finish), &f.samples);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      publish_scheduler_stats();
      stats_.prompt_tokens_total += step_prompt_tokens;
      stats_.generated_tokens_total += step_generated_tokens;
      if (stopping && active_.empty() && submitted_.empty() && !scheduler_.has_unfinished()) break;
    }
  }
}

}  // namespace gannet::engine
