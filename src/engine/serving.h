// ServingEngine: many concurrent requests on one Engine. A step thread runs the scheduler
// (engine/scheduler.h) in a loop: each iteration it takes new requests and cancellations,
// schedules one mixed batch (decodes and prompt chunks of many sequences), runs it as one forward
// pass over the paged KV store, samples every sequence that produced logits, and reports tokens
// through the request's callbacks. A request joins the very next step after Submit.
//
// Front ends (server, chat, benchmarks) use only this interface; they never touch the scheduler.
// Thread-safety: Submit, Cancel, stats and Shutdown may be called from any thread. Callbacks run
// on the step thread: they must be quick and must not call back into the ServingEngine except
// Cancel (which is then applied before the next step).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "engine/paged_kv.h"
#include "engine/prefill_pacer.h"
#include "engine/scheduler.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"

namespace gannet::engine {

struct ServingOptions {
  int32_t block_size = 16;          // tokens per KV block
  size_t kv_memory_bytes = 0;       // KV pool size; 0: a quarter of the machine's available memory,
                                    // at most what max_seqs full contexts need
  int32_t max_batch_tokens = 512;   // tokens in one forward pass (chunked prefill budget)
  int32_t max_seqs = 64;            // sequences in one forward pass
  int32_t max_queue = 256;          // requests waiting (not yet running) before Submit refuses
  bool prefix_caching = true;
  // A step that computes prompt chunks beside decoding sequences is sized (PrefillPacer) to take
  // about this many times a decode-only step, so streams keep their pace while a long prompt is
  // ingested. <= 0: prompt chunks use whatever is left of max_batch_tokens.
  double itl_factor = 2.0;
};

struct ServingRequest {
  std::vector<int32_t> prompt;      // token ids, BOS included if wanted
  int32_t max_tokens = 16;          // per sample; >= 1
  int32_t n = 1;                    // samples; sample i uses seed + i when a seed is given
  SamplingParams sampling;
  bool stop_at_eog = true;          // the model's end-of-generation tokens end a sample (not emitted)
  int32_t top_logprobs = -1;        // < 0: no logprobs; 0..20: the chosen token's and this many top ones
};

// One generated token of one sample.
struct TokenEvent {
  int32_t sample_index = 0;
  int32_t token = 0;
  float logprob = 0.0f;                 // when logprobs were asked for
  std::vector<TokenLogprob> top;        // when top_logprobs > 0
};

enum class SampleFinish { kLength, kStop, kContextFull, kCancelled, kError };
const char* SampleFinishName(SampleFinish f);  // OpenAI's finish_reason words ("length", "stop", ...)

struct ServingResult {
  Status status;                          // not OK: the request failed (no more tokens follow)
  std::vector<SampleFinish> finish;       // per sample
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;          // over all samples
  int64_t cached_prompt_tokens = 0;       // prompt tokens served from the prefix cache
};

struct ServingCallbacks {
  // Each sampled token, in order per sample. Return false to end that sample after this token
  // (e.g. a stop string matched); its finish reason is then kStop.
  std::function<bool(const TokenEvent&)> on_token;
  // Exactly once per accepted request, after its last on_token (also after Cancel).
  std::function<void(const ServingResult&)> on_done;
};

struct ServingStats {
  int32_t running = 0, waiting = 0;
  int32_t kv_blocks_used = 0, kv_blocks_total = 0;
  int64_t prefix_hit_tokens = 0, prefix_query_tokens = 0;
  int64_t prompt_tokens_total = 0, generated_tokens_total = 0;
  int64_t preemptions = 0, steps = 0;
  int64_t requests_finished = 0;
};

using ServingRequestId = uint64_t;

class ServingEngine {
 public:
  // Starts the step thread. The engine must outlive the ServingEngine and is used only by it.
  static Result<std::unique_ptr<ServingEngine>> Create(Engine* engine, const ServingOptions& options);
  ~ServingEngine();  // Shutdown(0) if still running
  ServingEngine(const ServingEngine&) = delete;
  ServingEngine& operator=(const ServingEngine&) = delete;

  // Queues a request. InvalidArgument for bad fields (empty prompt, a prompt + max_tokens that
  // cannot fit the model's context or the KV pool, bad sampling params), ResourceExhausted when
  // max_queue requests are already waiting (HTTP 429), Unavailable after Shutdown began.
  Result<ServingRequestId> Submit(ServingRequest request, ServingCallbacks callbacks);

  // Ends a request in any state; its KV blocks are freed before the next step. on_done follows
  // with kCancelled. Unknown or finished ids are ignored.
  void Cancel(ServingRequestId id);

  ServingStats stats() const;
  int64_t context_length() const;  // the longest prompt + max_tokens a request may have
  const Engine& engine() const { return *engine_; }

  // Stops accepting, lets running and queued requests finish for up to `grace`, cancels the rest,
  // and joins the step thread. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  ServingEngine(Engine* engine, const ServingOptions& options, Scheduler scheduler, PagedKvStore store);
  void Loop();

  struct Active;  // per-request state on the step thread
  struct Pending {
    ServingRequestId id;
    ServingRequest request;
    ServingCallbacks callbacks;
  };

  Engine* engine_;
  ServingOptions options_;
  Scheduler scheduler_;
  PagedKvStore store_;
  PrefillPacer pacer_;  // step thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> submitted_;
  std::vector<ServingRequestId> cancelled_;
  bool accepting_ = true;
  bool stop_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  ServingRequestId next_id_ = 1;
  int32_t queued_ = 0;  // submitted or waiting in the scheduler, not yet running
  // The requests of the forward pass in flight that are not cancelled yet. When the last one is
  // cancelled, abort_step_ stops the pass at its next node: clients that all went away free their
  // KV blocks without waiting for a whole step.
  std::vector<ServingRequestId> step_requests_;
  std::atomic<bool> abort_step_{false};
  ServingStats stats_;

  std::unordered_map<ServingRequestId, std::unique_ptr<Active>> active_;  // step thread only
  std::thread thread_;
};

}  // namespace gannet::engine
