// ModelRunner: the forward pass of one loaded model. It owns the model file's mapping, the
// weights' views, the tokenizer, the compute threads, the compiled plans (one per batch shape,
// fused and memory-planned) and their activation arena. It knows no requests: the Engine
// (engine.h) decides what each pass computes and owns the KV cache; bench, dump and the tests use
// Evaluate, which runs one private sequence.
// Thread-safety: not thread-safe; one caller at a time (the Engine's step thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "engine/paged_kv.h"
#include "formats/gguf.h"
#include "graph/plan.h"
#include "kernels/backend.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace gannet::engine {

struct ModelRunnerOptions {
  int n_threads = 0;  // 0: one per core
  int64_t n_ctx = 0;  // longest sequence; 0: min(training context, 4096)
  int64_t n_batch =
      512;  // most tokens Evaluate runs in one forward pass (longer inputs are chunked)
  // Compile forward passes with the graph fusion passes (graph/fuse.h). Off: every node of the
  // model's graph runs as written and an observer sees every intermediate tensor.
  bool fuse_graph = true;
  // Copy the matrices the backend's matmul kernels stream faster in a layout of their own (the
  // CPU: K-quants interleaved for AVX2 / AVX-512, Q8_0 / Q4_0 / Q5_0 for AVX-512,
  // kernels/cpu/repack.h) and drop their file pages.
  // Same results either way. Off: the mapped file rows are read (the CLI turns it off for
  // GANNET_REPACK=0, so that one build can be timed both ways).
  bool repack_weights = true;
  // The CPU kernel target by name ("scalar", "avx2", "avx512"); empty, unknown or unavailable
  // here: the best one (cpu::BestIsa). For comparing targets in one build (the CLI takes it from
  // GANNET_ISA).
  std::string isa;
};

// A runner over another runner's model with a restricted output head (self-speculation's draft,
// engine/self_draft.h; ModelRunner::LoadRestricted).
struct RestrictedHeadOptions {
  // The logits columns: column j is token tokens[j]. Distinct ids in [0, n_vocab), at least one.
  std::vector<int32_t> tokens;
  // Run only the first n_layers layers (early exit); 0: all.
  int64_t n_layers = 0;
};

// One sequence's part of a batched forward pass (ModelRunner::Execute).
//
// Token tree (tree_parents not empty; speculative decoding's verification): the new tokens are
// draft tokens forming a tree over the committed past. tree_parents[i] is the index of token i's
// parent among the new tokens (< i), or -1 when its parent is the last committed token (position
// n_past - 1). Token i is then at position n_past + depth(i) (depth 0 for a -1 parent), its K/V
// go to cache slot n_past + i (so the views must cover slots < n_past + size), and it attends
// [0, n_past) plus its ancestors and itself. Its logits have the exact bits that its path
// (committed past, ancestors, token) gets when evaluated as an ordinary sequence, in one pass or
// token by token. The accepted path's K/V are then moved to consecutive slots n_past, n_past + 1,
// ... by PagedKvStore::CopySlots (tokens already in their slot need no move); the other slots
// hold garbage that later tokens overwrite.
// At most 64 tokens; every parent in [-1, i); else InvalidArgument. A tree implies all_logits.
struct BatchSeq {
  std::span<const int32_t> tokens;         // new tokens, at positions [n_past, n_past + size)
  int64_t n_past = 0;                      // positions already in this sequence's cache
  std::span<const graph::KvLayerView> kv;  // its cache views, covering positions < n_past + size
  bool logits = false;                     // wants the logits of its last new token
  bool all_logits = false;                 // wants the logits of every new token (rows in order)
  std::span<const int32_t> tree_parents;   // [tokens.size()] or empty: not a tree
};

class ModelRunner {
 public:
  static Result<std::unique_ptr<ModelRunner>> Load(const std::string& model_path,
                                                   const ModelRunnerOptions& options);

  // A second runner over `target`'s model that computes only the logits of options.tokens (the
  // output matrix's rows of those tokens, gathered into a copy: a decode step then streams the
  // layers and N rows instead of the whole vocabulary's) after the first options.n_layers layers.
  // Logits rows have tokens.size() columns (logit_tokens() maps them back); with every layer run,
  // column j has the exact bits of the target's logit of token tokens[j]. It shares the target's
  // file mapping, model, weights and the backend's prepared copies of them, tokenizer, threads and
  // context; it has its own plans and activation arena. config() is the target's with n_layer =
  // the layers run (its KV caches have that many layers).
  // REQUIRES: target outlives it; the two never run at the same time (one driving thread).
  static Result<std::unique_ptr<ModelRunner>> LoadRestricted(ModelRunner& target,
                                                             const RestrictedHeadOptions& options);

  const models::ModelConfig& config() const { return config_; }
  const models::Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& file() const { return *file_; }
  int n_threads() const { return pool_->size(); }
  // The compute threads, for work the caller does between forward passes on the thread that
  // drives them (e.g. sampling many sequences). Not while a forward pass runs.
  ThreadPool& pool() { return *pool_; }
  int64_t n_ctx() const { return n_ctx_; }
  // Columns of a logits row: n_vocab, or the restricted head's token count.
  int64_t n_logits() const { return n_logits_; }
  // Column -> token id of a restricted head (LoadRestricted); empty: column j is token j.
  std::span<const int32_t> logit_tokens() const { return logit_tokens_; }
  // The weights the backend copied at load (ModelRunnerOptions::repack_weights): their bytes and
  // the seconds the copy took (0 when nothing was copied). A restricted runner counts its own
  // copies only, plus its gathered head (head_bytes).
  size_t repacked_bytes() const { return backend_->prepared_weight_bytes(); }
  double repack_seconds() const { return repack_seconds_; }
  size_t head_bytes() const { return head_bytes_; }
  // The kernel options it was loaded with (ModelRunnerOptions::repack_weights and ::isa), for a
  // model loaded beside it (a draft) to run on the same terms.
  bool repack_option() const { return repack_option_; }
  const std::string& isa_option() const { return isa_option_; }

  // Runs the new tokens of several sequences in ONE forward pass (their rows concatenated in
  // order; attention stays within each sequence's own cache views). Returns [n, n_logits] logits,
  // in sequence order: every new token's row for a sequence with all_logits or a tree, else one
  // row (its last token's) for a sequence with `logits` set. The span is valid until the next
  // call. A token id outside the vocabulary, or a malformed tree, is InvalidArgument (nothing is
  // written).
  // REQUIRES: each sequence's positions before n_past are in its cache.
  // `abort` (optional): when it becomes true the pass stops at its next graph node and returns
  // Unavailable; the K/V positions of this batch are then partly written and must be discarded.
  // `observer` (optional): called after each graph node, as Evaluate's.
  Result<std::span<const float>> Execute(std::span<const BatchSeq> seqs,
                                         const std::atomic<bool>* abort = nullptr,
                                         const graph::NodeObserver* observer = nullptr);

  // One private sequence of up to n_ctx positions (its KV memory is reserved on first use): runs
  // `tokens` at positions [n_past, n_past + n), in chunks of n_batch. Returns logits [n_vocab] of
  // the last token, or [n, n_vocab] of every token when all_logits (n_logits columns). Valid until
  // the next call. REQUIRES: positions before n_past were evaluated by earlier calls.
  Result<std::span<const float>> Evaluate(std::span<const int32_t> tokens, int64_t n_past,
                                          bool all_logits,
                                          const graph::NodeObserver* observer = nullptr);

 private:
  ModelRunner() = default;
  Result<const graph::Plan*> GetPlan(int64_t n_tokens, int64_t n_outputs);
  // Appends one sequence's rows, positions, output rows and slice to the batch being built.
  Status AddBatchSeq(const BatchSeq& s);
  void EnsureArena(size_t arena_bytes, size_t scratch_bytes);
  // Offers every matrix the model's matmuls read to the backend (PrepareMatMulWeights), dropping
  // the file pages of what it copied as it goes: peak memory stays near the copies' size instead
  // of copies plus file.
  Status PrepareWeights();

  std::shared_ptr<const GgufFile> file_;
  std::shared_ptr<const models::Model> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  models::ModelConfig config_;
  std::unique_ptr<ThreadPool> own_pool_;  // null when borrowed (LoadRestricted)
  ThreadPool* pool_ = nullptr;
  std::unique_ptr<kernels::Backend> backend_;  // runs the plans on pool_
  // The forward pass's variant (LoadRestricted): layers run and the gathered output rows.
  models::GraphOptions graph_options_;
  std::vector<int32_t> logit_tokens_;
  int64_t n_logits_ = 0;
  int64_t n_ctx_ = 0;
  int64_t n_batch_ = 512;
  bool fuse_graph_ = true;
  bool repack_option_ = true;
  std::string isa_option_;
  double repack_seconds_ = 0;
  std::map<std::pair<int64_t, int64_t>, graph::Plan> plans_;  // by (n_tokens, n_outputs)
  struct FreeDeleter {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, FreeDeleter> head_;  // the gathered output rows (LoadRestricted)
  size_t head_bytes_ = 0;
  std::unique_ptr<void, FreeDeleter> arena_;
  size_t arena_capacity_ = 0;
  std::unique_ptr<void, FreeDeleter> scratch_;
  size_t scratch_capacity_ = 0;
  std::vector<int32_t> positions_, output_rows_, batch_tokens_;
  std::vector<graph::SeqSlice> slices_;
  std::vector<uint64_t> tree_masks_;  // the trees' rows' ancestor masks, for slices_
  std::vector<float> logits_;         // all-logits results gathered over chunks
  // Evaluate's sequence: one block of n_ctx positions (contiguous K/V per layer).
  std::optional<PagedKvStore> single_;
  SeqKvViews single_views_;
};

}  // namespace gannet::engine
