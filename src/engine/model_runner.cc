#include "engine/model_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

#include "kernels/cpu/cpu_backend.h"
#include "tensor/dtype.h"

namespace gannet::engine {
namespace {

// Plans are cheap to build (a few hundred nodes) but hold their graph: keep the few shapes a
// generation uses (decode, full prompt chunks, the last partial chunk) and drop the rest.
constexpr size_t kMaxCachedPlans = 16;

// A token tree's positions (n_past + depth) and ancestor masks (bit j: token j is the token itself
// or one of its ancestors), from the parent indices.
Status TreeLayout(std::span<const int32_t> parents, int64_t n_past, int32_t* positions,
                  uint64_t* masks) {
  const int64_t n = static_cast<int64_t>(parents.size());
  if (n > kernels::kMaxTreeTokens) {
    return Status::InvalidArgument("a token tree has " + std::to_string(n) + " tokens; at most " +
                                   std::to_string(kernels::kMaxTreeTokens) + " are supported");
  }
  for (int64_t i = 0; i < n; ++i) {
    const int32_t p = parents[i];
    if (p < -1 || p >= i) {
      return Status::InvalidArgument("token tree: token " + std::to_string(i) + " has parent " +
                                     std::to_string(p) + "; a parent must be in [-1, " +
                                     std::to_string(i) + ")");
    }
    positions[i] = p < 0 ? static_cast<int32_t>(n_past) : positions[p] + 1;
    masks[i] = (p < 0 ? 0 : masks[p]) | uint64_t{1} << i;
  }
  return Status::Ok();
}

}  // namespace

void ModelRunner::FreeDeleter::operator()(void* p) const { std::free(p); }

Result<std::unique_ptr<ModelRunner>> ModelRunner::Load(const std::string& model_path,
                                                       const ModelRunnerOptions& options) {
  if (options.n_batch <= 0) return Status::InvalidArgument("batch size must be positive");
  if (options.n_ctx < 0) return Status::InvalidArgument("context size must not be negative");
  GANNET_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(model_path));
  std::shared_ptr<const GgufFile> file(std::move(gguf));
  Result<std::unique_ptr<models::Model>> loaded = models::LoadModel(file);
  if (!loaded.ok()) return loaded.status().WithContext(model_path);
  std::unique_ptr<models::Model> model = std::move(loaded).value();
  Result<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromGguf(*file);
  if (!tok.ok()) return tok.status();
  const models::ModelConfig& c = model->config();
  if (tok.value()->n_vocab() > c.n_vocab) {
    return Status::Corrupt("tokenizer has more tokens than the model's embedding table");
  }
  int64_t n_ctx = options.n_ctx > 0 ? options.n_ctx : std::min<int64_t>(c.n_ctx_train, 4096);
  if (n_ctx > c.n_ctx_train) {
    return Status::OutOfRange("context size " + std::to_string(n_ctx) +
                              " exceeds the model's training context " +
                              std::to_string(c.n_ctx_train));
  }
  int n_threads = options.n_threads > 0 ? options.n_threads : ThreadPool::HardwareThreads();
  std::unique_ptr<ModelRunner> e(new ModelRunner());
  e->own_pool_ = std::make_unique<ThreadPool>(n_threads);
  e->pool_ = e->own_pool_.get();
  e->backend_ = std::make_unique<cpu::CpuBackend>(
      *e->pool_, cpu::IsaByName(options.isa).value_or(cpu::BestIsa()), options.repack_weights);
  e->isa_option_ = options.isa;
  e->repack_option_ = options.repack_weights;
  e->n_ctx_ = n_ctx;
  e->n_logits_ = c.n_vocab;
  e->config_ = c;
  e->file_ = std::move(file);
  e->model_ = std::move(model);
  e->tokenizer_ = std::move(tok).value();
  e->n_batch_ = options.n_batch;
  e->fuse_graph_ = options.fuse_graph;
  GANNET_RETURN_IF_ERROR(e->PrepareWeights());
  return e;
}

Result<std::unique_ptr<ModelRunner>> ModelRunner::LoadRestricted(
    ModelRunner& target, const RestrictedHeadOptions& options) {
  const models::ModelConfig& c = target.model_->config();
  const graph::WeightRef& out = target.model_->output_weight();
  if (options.tokens.empty()) return Status::InvalidArgument("a restricted head needs tokens");
  if (options.n_layers < 0 || options.n_layers > c.n_layer) {
    return Status::InvalidArgument("a restricted runner's layers must be in [0, " +
                                   std::to_string(c.n_layer) + "], got " +
                                   std::to_string(options.n_layers));
  }
  if (!target.logit_tokens_.empty() || target.graph_options_.n_layers != 0) {
    return Status::InvalidArgument("a restricted runner's target must be a full one");
  }
  std::vector<bool> seen(static_cast<size_t>(out.rows), false);
  for (const int32_t t : options.tokens) {
    if (t < 0 || t >= out.rows || seen[static_cast<size_t>(t)]) {
      return Status::InvalidArgument("restricted head: token " + std::to_string(t) +
                                     " is out of range or named twice");
    }
    seen[static_cast<size_t>(t)] = true;
  }
  const std::optional<int64_t> row_bytes = RowBytes(out.type, out.cols);
  if (!row_bytes) return Status::Unsupported("restricted head: the output matrix's type");
  std::unique_ptr<ModelRunner> r(new ModelRunner());
  r->pool_ = target.pool_;
  r->backend_ = target.backend_->NewSharingWeights();
  if (r->backend_ == nullptr) {
    r->backend_ = std::make_unique<cpu::CpuBackend>(
        *r->pool_, cpu::IsaByName(target.isa_option_).value_or(cpu::BestIsa()), false);
  }
  r->isa_option_ = target.isa_option_;
  r->repack_option_ = target.repack_option_;
  r->file_ = target.file_;
  r->model_ = target.model_;
  r->tokenizer_ = target.tokenizer_;
  r->config_ = c;
  if (options.n_layers > 0) r->config_.n_layer = options.n_layers;
  r->n_ctx_ = target.n_ctx_;
  r->n_batch_ = target.n_batch_;
  r->fuse_graph_ = target.fuse_graph_;
  r->logit_tokens_ = options.tokens;
  r->n_logits_ = static_cast<int64_t>(options.tokens.size());
  // Rows of a matrix are contiguous and whole blocks: the subset is a copy of each row's bytes,
  // and its products are the full matrix's for those rows, bit for bit.
  const size_t rb = static_cast<size_t>(*row_bytes);
  r->head_bytes_ = rb * options.tokens.size();
  r->head_.reset(std::aligned_alloc(64, (r->head_bytes_ + 63) / 64 * 64));
  if (r->head_ == nullptr) return Status::ResourceExhausted("no memory for a restricted head");
  // From the target backend's copy when it made one: the file pages of a repacked matrix were
  // dropped at load, and gathering 32768 rows from them paged much of it back in.
  target.backend_->ReadWeightRows(
      {.type = out.type, .data = out.data, .rows = out.rows, .cols = out.cols}, options.tokens,
      r->head_.get());
  r->graph_options_ = models::GraphOptions{.n_layers = options.n_layers,
                                           .output = graph::WeightRef{.type = out.type,
                                                                      .data = r->head_.get(),
                                                                      .rows = r->n_logits_,
                                                                      .cols = out.cols,
                                                                      .name = "restricted_output"}};
  GANNET_RETURN_IF_ERROR(r->PrepareWeights());
  return r;
}

Status ModelRunner::PrepareWeights() {
  // The unfused one-token graph names every matrix a matmul of any plan reads.
  GANNET_ASSIGN_OR_RETURN(graph::Graph g, model_->BuildGraph(1, 1, graph_options_));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<kernels::Weight> weights;
  std::unordered_set<const void*> seen;
  for (const graph::Node& node : g.nodes) {
    if (node.op != graph::OpKind::kMatMul && node.op != graph::OpKind::kMatMulGlu) continue;
    for (const graph::WeightRef* w : {&node.weight, &node.weight2}) {
      if (!w->valid() || !seen.insert(w->data).second) continue;
      weights.push_back({.type = w->type, .data = w->data, .rows = w->rows, .cols = w->cols});
    }
  }
  // A copied part of the file is not read by the matmuls again: its pages go as the copy grows
  // (an embedding table that is also the output matrix is read from the copy too).
  // DropPages ignores what is not in the file (a restricted head's gathered rows).
  const GgufFile& file = *file_;
  backend_->PrepareMatMulWeights(weights,
                                 [&file](std::span<const uint8_t> part) { file.DropPages(part); });
  if (backend_->prepared_weight_bytes() > 0) {
    repack_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return Status::Ok();
}

Result<const graph::Plan*> ModelRunner::GetPlan(int64_t n_tokens, int64_t n_outputs) {
  auto key = std::make_pair(n_tokens, n_outputs);
  auto it = plans_.find(key);
  if (it != plans_.end()) return &it->second;
  GANNET_ASSIGN_OR_RETURN(graph::Graph g, model_->BuildGraph(n_tokens, n_outputs, graph_options_));
  GANNET_ASSIGN_OR_RETURN(graph::Plan plan,
                          graph::Plan::Compile(std::move(g), {.fuse = fuse_graph_}));
  if (plans_.size() >= kMaxCachedPlans) {
    // Keep the decode plan; drop some other shape.
    for (auto p = plans_.begin(); p != plans_.end(); ++p) {
      if (p->first.first != 1) {
        plans_.erase(p);
        break;
      }
    }
  }
  auto [pos, inserted] = plans_.emplace(key, std::move(plan));
  EnsureArena(pos->second.arena_bytes(), pos->second.scratch_bytes(*backend_));
  return &pos->second;
}

void ModelRunner::EnsureArena(size_t arena_bytes, size_t scratch_bytes) {
  auto alloc = [](size_t bytes) {
    return std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
  };
  if (arena_bytes > arena_capacity_) {
    arena_.reset(alloc(arena_bytes));
    arena_capacity_ = arena_bytes;
  }
  if (scratch_bytes > scratch_capacity_) {
    scratch_.reset(alloc(scratch_bytes));
    scratch_capacity_ = scratch_bytes;
  }
}

Result<std::span<const float>> ModelRunner::Evaluate(std::span<const int32_t> tokens,
                                                     int64_t n_past, bool all_logits,
                                                     const graph::NodeObserver* observer) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return Status::InvalidArgument("nothing to evaluate");
  if (n_past < 0 || n_past + n > n_ctx_) {
    return Status::OutOfRange(std::to_string(n_past + n) + " tokens do not fit the context of " +
                              std::to_string(n_ctx_));
  }
  if (!single_) {
    GANNET_ASSIGN_OR_RETURN(PagedKvStore store, PagedKvStore::Create(config(), 1, n_ctx_));
    single_.emplace(std::move(store));
    const int32_t table[1] = {0};
    single_->Assign(table, &single_views_);
  }
  const int64_t n_vocab = n_logits_;
  if (all_logits && n > n_batch_) logits_.resize(static_cast<size_t>(n * n_vocab));
  std::span<const float> out;
  for (int64_t start = 0; start < n; start += n_batch_) {
    const int64_t len = std::min(n_batch_, n - start);
    const int64_t n_out = all_logits ? len : 1;
    GANNET_ASSIGN_OR_RETURN(const graph::Plan* plan, GetPlan(len, n_out));
    positions_.resize(len);
    for (int64_t i = 0; i < len; ++i) positions_[i] = static_cast<int32_t>(n_past + start + i);
    output_rows_.resize(n_out);
    for (int64_t i = 0; i < n_out; ++i)
      output_rows_[i] = static_cast<int32_t>(all_logits ? i : len - 1);
    graph::BatchInputs in{.tokens = tokens.subspan(start, len),
                          .positions = positions_,
                          .output_rows = output_rows_,
                          .kv = single_views_.layers,
                          .n_kv = n_past + start + len};
    GANNET_ASSIGN_OR_RETURN(out,
                            plan->Execute(*backend_, in, arena_.get(), scratch_.get(), observer));
    if (all_logits && n > n_batch_) {
      std::memcpy(logits_.data() + start * n_vocab, out.data(), out.size_bytes());
    }
  }
  if (all_logits && n > n_batch_) return std::span<const float>(logits_);
  return out;
}

Status ModelRunner::AddBatchSeq(const BatchSeq& s) {
  const size_t n_layer = static_cast<size_t>(config().n_layer);
  if (s.tokens.empty()) return Status::InvalidArgument("a batch sequence has no tokens");
  if (s.n_past < 0) return Status::InvalidArgument("negative sequence position");
  if (s.kv.size() != n_layer)
    return Status::InvalidArgument("a batch sequence has no KV views for every layer");
  const bool tree = !s.tree_parents.empty();
  if (tree && s.tree_parents.size() != s.tokens.size()) {
    return Status::InvalidArgument("a token tree needs one parent per token (" +
                                   std::to_string(s.tree_parents.size()) + " for " +
                                   std::to_string(s.tokens.size()) + " tokens)");
  }
  const int64_t begin = static_cast<int64_t>(batch_tokens_.size());
  const int64_t n = static_cast<int64_t>(s.tokens.size());
  batch_tokens_.insert(batch_tokens_.end(), s.tokens.begin(), s.tokens.end());
  positions_.resize(static_cast<size_t>(begin + n));
  const uint64_t* masks = nullptr;
  if (tree) {
    // tree_masks_ was reserved for the whole batch: earlier slices' pointers stay valid.
    const size_t m = tree_masks_.size();
    tree_masks_.resize(m + static_cast<size_t>(n));
    GANNET_RETURN_IF_ERROR(
        TreeLayout(s.tree_parents, s.n_past, &positions_[begin], &tree_masks_[m]));
    masks = &tree_masks_[m];
  } else {
    for (int64_t i = 0; i < n; ++i) positions_[begin + i] = static_cast<int32_t>(s.n_past + i);
  }
  const int64_t end = begin + n;
  if (s.all_logits || tree) {
    for (int64_t r = begin; r < end; ++r) output_rows_.push_back(static_cast<int32_t>(r));
  } else if (s.logits) {
    output_rows_.push_back(static_cast<int32_t>(end - 1));
  }
  slices_.push_back(graph::SeqSlice{.row_begin = begin,
                                    .row_end = end,
                                    .kv = s.kv,
                                    .n_kv = s.n_past + n,
                                    .tree_mask = masks,
                                    .tree_base = tree ? s.n_past : 0});
  return Status::Ok();
}

Result<std::span<const float>> ModelRunner::Execute(std::span<const BatchSeq> seqs,
                                                    const std::atomic<bool>* abort,
                                                    const graph::NodeObserver* observer) {
  const int64_t n_vocab = n_logits_;
  batch_tokens_.clear();
  positions_.clear();
  output_rows_.clear();
  slices_.clear();
  tree_masks_.clear();
  size_t n_rows = 0;
  for (const BatchSeq& s : seqs) n_rows += s.tokens.size();
  tree_masks_.reserve(n_rows);
  for (const BatchSeq& s : seqs) GANNET_RETURN_IF_ERROR(AddBatchSeq(s));
  if (batch_tokens_.empty()) return Status::InvalidArgument("nothing to evaluate");
  const int64_t n = static_cast<int64_t>(batch_tokens_.size());
  const int64_t n_out = static_cast<int64_t>(output_rows_.size());
  if (n_out == 0) {
    // The graph always ends in logits; compute the last row's and return none.
    output_rows_.push_back(static_cast<int32_t>(n - 1));
  }
  GANNET_ASSIGN_OR_RETURN(const graph::Plan* plan,
                          GetPlan(n, static_cast<int64_t>(output_rows_.size())));
  graph::BatchInputs in{.tokens = batch_tokens_,
                        .positions = positions_,
                        .output_rows = output_rows_,
                        .seqs = slices_,
                        .abort = abort};
  GANNET_ASSIGN_OR_RETURN(std::span<const float> out,
                          plan->Execute(*backend_, in, arena_.get(), scratch_.get(), observer));
  return out.first(static_cast<size_t>(n_out * n_vocab));
}

}  // namespace gannet::engine
