// Engine: one loaded model and everything needed to run it — tokenizer, thread pool, KV
// cache, compiled plans and their activation arena. Every front end (run, bench, chat, serve)
// drives generation through this class; none re-implements it (DESIGN.md).
//
// This version serves one sequence at a time; the paged multi-sequence cache and the
// iteration-level scheduler build on the same Evaluate() step.
// Thread-safety: not thread-safe; one caller at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "engine/kv_cache.h"
#include "formats/gguf.h"
#include "graph/plan.h"
#include "kernels/backend.h"
#include "models/model.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace gannet::engine {

struct EngineOptions {
  int n_threads = 0;     // 0: one per core
  int64_t n_ctx = 0;     // KV cache positions; 0: min(training context, 4096)
  int64_t n_batch = 512; // most tokens evaluated in one forward pass (prompt chunks)
  // Compile forward passes with the graph fusion passes (graph/fuse.h). Off: every node of the
  // model's graph runs as written and an observer sees every intermediate tensor.
  bool fuse_graph = true;
};

enum class FinishReason { kLength, kEndOfGeneration, kContextFull, kCancelled };
const char* FinishReasonName(FinishReason r);

struct GenerateRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included if wanted
  int32_t max_tokens = 128;     // < 0: until end of generation or a full context
  SamplingParams sampling;
  bool stop_at_eog = true;      // stop at the model's end-of-generation tokens (not emitted)
};

struct GenerateStats {
  int64_t n_prompt = 0, n_gen = 0;
  double prompt_seconds = 0, gen_seconds = 0;
  double prompt_tps() const { return prompt_seconds > 0 ? n_prompt / prompt_seconds : 0; }
  double gen_tps() const { return gen_seconds > 0 ? n_gen / gen_seconds : 0; }
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (an end-of-generation token is not included)
  FinishReason finish = FinishReason::kLength;
  GenerateStats stats;
};

// One sequence's part of a batched forward pass (Engine::EvaluateBatch).
struct BatchSeq {
  std::span<const int32_t> tokens;         // new tokens, at positions [n_past, n_past + size)
  int64_t n_past = 0;                      // positions already in this sequence's cache
  std::span<const graph::KvLayerView> kv;  // its cache views, covering positions < n_past + size
  bool logits = false;                     // wants the logits of its last new token
};

// Called with each generated token as soon as it is sampled; return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Load(const std::string& model_path, const EngineOptions& options);

  const models::ModelConfig& config() const { return model_->config(); }
  const models::Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& file() const { return *file_; }
  int n_threads() const { return pool_.size(); }
  // The compute threads, for work a front end does between forward passes on the thread that
  // drives them (e.g. sampling many sequences). Not while a forward pass runs.
  ThreadPool& pool() { return pool_; }
  int64_t n_ctx() const { return kv_.n_ctx(); }

  // Runs the model on `tokens` at positions [n_past, n_past + n) of the sequence, writing their
  // K/V into the cache. Returns logits [n_vocab] of the last token, or [n, n_vocab] of every token
  // when all_logits. The span is valid until the next call.
  // REQUIRES: positions before n_past were evaluated by earlier calls.
  Result<std::span<const float>> Evaluate(std::span<const int32_t> tokens, int64_t n_past, bool all_logits,
                                          const graph::NodeObserver* observer = nullptr);

  // Runs the new tokens of several sequences in ONE forward pass (their rows concatenated in
  // order; attention stays within each sequence's own cache views). Returns [n, n_vocab] logits,
  // one row per sequence with `logits` set, in order. The span is valid until the next call.
  // REQUIRES: each sequence's positions before n_past are in its cache.
  // `abort` (optional): when it becomes true the pass stops at its next graph node and returns
  // Unavailable; the K/V positions of this batch are then partly written and must be discarded.
  Result<std::span<const float>> EvaluateBatch(std::span<const BatchSeq> seqs,
                                               const std::atomic<bool>* abort = nullptr);

  // Prefills the prompt, then samples up to max_tokens tokens one at a time.
  Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token);

 private:
  Engine(int n_threads, KvCache kv) : pool_(n_threads), kv_(std::move(kv)) {}
  Result<const graph::Plan*> GetPlan(int64_t n_tokens, int64_t n_outputs);
  void EnsureArena(size_t arena_bytes, size_t scratch_bytes);

  std::shared_ptr<const GgufFile> file_;
  std::unique_ptr<models::Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ThreadPool pool_;
  std::unique_ptr<kernels::Backend> backend_;  // runs the plans on pool_
  KvCache kv_;
  int64_t n_batch_ = 512;
  bool fuse_graph_ = true;
  std::map<std::pair<int64_t, int64_t>, graph::Plan> plans_;  // by (n_tokens, n_outputs)
  struct FreeDeleter {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, FreeDeleter> arena_;
  size_t arena_capacity_ = 0;
  std::unique_ptr<void, FreeDeleter> scratch_;
  size_t scratch_capacity_ = 0;
  std::vector<int32_t> positions_, output_rows_, batch_tokens_;
  std::vector<graph::SeqSlice> slices_;
  std::vector<float> logits_;  // all-logits results gathered over chunks
};

}  // namespace gannet::engine
