#include "engine/draft_model.h"

#include <algorithm>

namespace gannet::engine {
namespace {

// The indices of the k largest values of `row`, largest first (ties: the lower id first).
void TopK(std::span<const float> row, int32_t k, std::vector<int32_t>* out) {
  out->clear();
  for (int32_t id = 0; id < static_cast<int32_t>(row.size()); ++id) {
    const float v = row[static_cast<size_t>(id)];
    if (static_cast<int32_t>(out->size()) == k && !(v > row[static_cast<size_t>(out->back())])) {
      continue;
    }
    auto pos = out->end();
    while (pos != out->begin() && v > row[static_cast<size_t>(*(pos - 1))]) --pos;
    out->insert(pos, id);
    if (static_cast<int32_t>(out->size()) > k) out->pop_back();
  }
}

}  // namespace

Status CheckDraftVocabulary(const ModelRunner& target, const ModelRunner& draft) {
  const std::string which = "the draft model " + draft.file().path() +
                            " does not share the vocabulary of " + target.file().path() + ": ";
  const Tokenizer& t = target.tokenizer();
  const Tokenizer& d = draft.tokenizer();
  if (&t == &d) return Status::Ok();  // a restricted runner over the target (self_draft.h)
  if (draft.config().n_vocab != target.config().n_vocab || d.n_vocab() != t.n_vocab()) {
    return Status::InvalidArgument(which + std::to_string(d.n_vocab()) + " tokens (" +
                                   std::to_string(draft.config().n_vocab) + " logits) against " +
                                   std::to_string(t.n_vocab()) + " (" +
                                   std::to_string(target.config().n_vocab) + ")");
  }
  for (int32_t id = 0; id < t.n_vocab(); ++id) {
    const std::string a = t.TokenToPiece(id, /*render_special=*/true);
    const std::string b = d.TokenToPiece(id, /*render_special=*/true);
    if (a != b) {
      return Status::InvalidArgument(which + "token " + std::to_string(id) + " is '" + b +
                                     "' in the draft and '" + a + "' in the model");
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<ModelRunner>> LoadDraftModel(const std::string& path,
                                                    const ModelRunner& target) {
  ModelRunnerOptions options{.n_threads = target.n_threads(),
                             .n_ctx = target.n_ctx(),
                             .repack_weights = target.repack_option(),
                             .isa = target.isa_option()};
  Result<std::unique_ptr<ModelRunner>> draft = ModelRunner::Load(path, options);
  if (!draft.ok() && draft.status().code() == StatusCode::kOutOfRange) {
    // A draft trained on a shorter context than the target's: drafts stop where it ends.
    options.n_ctx = 0;
    draft = ModelRunner::Load(path, options);
  }
  if (!draft.ok()) return draft.status().WithContext("draft model");
  GANNET_RETURN_IF_ERROR(CheckDraftVocabulary(target, **draft));
  return draft;
}

Result<std::unique_ptr<ModelDrafter>> ModelDrafter::Create(ModelRunner* draft,
                                                           const DraftModelOptions& options) {
  if (draft == nullptr) return Status::InvalidArgument("no draft model");
  if (options.n_blocks <= 0 || options.block_size <= 0 || options.max_batch_tokens <= 0 ||
      options.branch_levels < 0 || options.branch_width < 1) {
    return Status::InvalidArgument(
        "draft model options must be positive (blocks, block size, batch tokens, width)");
  }
  GANNET_ASSIGN_OR_RETURN(
      PagedKvStore store,
      PagedKvStore::Create(draft->config(), options.n_blocks, options.block_size));
  GANNET_ASSIGN_OR_RETURN(BlockPool pool, BlockPool::Create({.num_blocks = options.n_blocks,
                                                             .block_size = options.block_size}));
  return std::unique_ptr<ModelDrafter>(
      new ModelDrafter(draft, options, std::move(store), KvCacheManager(std::move(pool))));
}

ModelDrafter::Shape ModelDrafter::ShapeFor(int32_t max_nodes) const {
  const int32_t extra = options_.branch_width - 1;
  // A quarter of the budget at most goes to alternatives: a chain the draft model agrees with
  // the target on is what yields most.
  Shape s{.depth = max_nodes,
          .branch_levels = extra > 0 ? std::min(options_.branch_levels, max_nodes / 4) : 0};
  s.depth = max_nodes - s.branch_levels * extra;
  if (s.depth < s.branch_levels || s.depth < 1) s = {.depth = max_nodes, .branch_levels = 0};
  return s;
}

Status ModelDrafter::CopyKvFrom(const PagedKvStore* target) {
  if (target != nullptr &&
      (target->block_size() != store_.block_size() || target->n_layers() < store_.n_layers())) {
    return Status::InvalidArgument("the draft's K/V cannot be copied from the target's store");
  }
  target_kv_ = target;
  return Status::Ok();
}

void ModelDrafter::Release(SeqId seq) {
  kv_.Free(seq);
  seqs_.erase(seq);
}

void ModelDrafter::ReleaseIf(const std::function<bool(SeqId)>& gone) {
  for (auto it = seqs_.begin(); it != seqs_.end();) {
    if (gone(it->first)) {
      kv_.Free(it->first);
      it = seqs_.erase(it);
    } else {
      ++it;
    }
  }
}

bool ModelDrafter::ResizeSlots(SeqId seq, int32_t slots) {
  const int32_t have = kv_.Contains(seq) ? kv_.NumSlots(seq) : 0;
  if (slots > have) return kv_.AllocateSlots(seq, slots - have);
  // Only chain tokens the target did not accept lie past `slots`; no committed block is cut.
  if (slots < have) kv_.TrimSlots(seq, slots);
  return true;
}

bool ModelDrafter::Plan(const DraftRequest& r, int32_t* budget, Work* w) {
  const int32_t n = static_cast<int32_t>(r.tokens.size());
  if (n == 0 || ModelNodes(r) < 1 || *budget <= 0) return false;
  if (n > runner_->n_ctx()) {  // past the draft model's context: no more drafts
    Release(r.seq);
    return false;
  }
  auto [it, is_new] = seqs_.try_emplace(r.seq);
  SeqState& s = it->second;
  int32_t keep = 0;
  if (is_new) {
    const PrefixMatch m = kv_.MatchPrefix(r.tokens);
    if (m.num_tokens > 0 && kv_.AllocateSlots(r.seq, 0, &m)) keep = m.num_tokens;
  } else {
    // The K/V of the longest common prefix stay (always the tokens accepted before, and the chain
    // tokens accepted since); at least the newest token runs, for its logits.
    const int32_t limit = std::min(static_cast<int32_t>(s.tokens.size()), n - 1);
    while (keep < limit && s.tokens[static_cast<size_t>(keep)] == r.tokens[keep]) ++keep;
  }
  w->request = &r;
  w->state = &s;
  w->copy_from = keep;
  if (target_kv_ != nullptr && r.target_kv > keep) {
    // The target's K/V of these positions are this draft's: copied, not run (the newest token
    // always runs, for its logits).
    keep = std::min(r.target_kv, n - 1);
    keep = std::max(keep, w->copy_from);
  }
  w->keep = keep;
  w->n_run = std::min(n - keep, *budget);
  w->drafts = w->n_run == n - keep;
  w->shape = ShapeFor(std::min(ModelNodes(r), kMaxDraftTokens));
  // Chain tokens 0..depth-2 run at positions n..n+depth-2, inside the draft's context.
  w->shape.depth =
      static_cast<int32_t>(std::min<int64_t>(w->shape.depth, runner_->n_ctx() - n + 1));
  w->shape.branch_levels = std::min(w->shape.branch_levels, w->shape.depth);
  if (!ResizeSlots(r.seq, w->drafts ? n + w->shape.depth - 1 : keep + w->n_run)) {
    if (!kv_.Contains(r.seq)) seqs_.erase(it);
    return false;  // the pool is short: no draft this step, the K/V kept stays
  }
  s.tokens.assign(r.tokens.begin(), r.tokens.begin() + keep + w->n_run);
  w->chain.clear();
  w->chain.reserve(static_cast<size_t>(w->shape.depth));
  w->alternatives.clear();
  *budget -= w->n_run;
  return true;
}

void ModelDrafter::TakeLevel(std::span<const float> row, Work* w) const {
  const int32_t level = static_cast<int32_t>(w->chain.size());
  const int32_t k = level < w->shape.branch_levels ? options_.branch_width : 1;
  std::vector<int32_t> top;
  TopK(row, k, &top);
  // A restricted head's columns are a subset of the vocabulary (self_draft.h).
  const std::span<const int32_t> ids = runner_->logit_tokens();
  if (!ids.empty()) {
    for (int32_t& t : top) t = ids[static_cast<size_t>(t)];
  }
  w->chain.push_back(top[0]);
  if (top.size() > 1) w->alternatives.emplace_back(top.begin() + 1, top.end());
}

Status ModelDrafter::CatchUp(std::vector<Work>& work) {
  for (const BlockCopy& c : kv_.TakeCopies()) store_.CopyBlock(c.src, c.dst);
  for (const Work& w : work) {
    if (w.keep > w.copy_from) {
      store_.CopyPositionsFrom(*target_kv_, w.request->target_blocks,
                               kv_.BlockTable(w.request->seq), w.copy_from, w.keep);
    }
  }
  if (views_.size() < work.size()) views_.resize(work.size());
  batch_.clear();
  for (size_t i = 0; i < work.size(); ++i) {
    const Work& w = work[i];
    store_.Assign(kv_.BlockTable(w.request->seq), &views_[i]);
    batch_.push_back(BatchSeq{.tokens = w.request->tokens.subspan(static_cast<size_t>(w.keep),
                                                                  static_cast<size_t>(w.n_run)),
                              .n_past = w.keep,
                              .kv = views_[i].layers,
                              .logits = w.drafts});
  }
  GANNET_ASSIGN_OR_RETURN(std::span<const float> logits, runner_->Execute(batch_));
  const size_t n_vocab = static_cast<size_t>(runner_->n_logits());
  size_t row = 0;
  for (Work& w : work) {
    // Every token run so far is the target's: full blocks of them serve later prefixes.
    kv_.CommitTokens(w.request->seq, w.request->tokens, w.keep + w.n_run);
    if (w.drafts) TakeLevel(logits.subspan(row++ * n_vocab, n_vocab), &w);
  }
  return Status::Ok();
}

Status ModelDrafter::DecodeLevel(std::vector<Work>& work, int32_t level) {
  batch_.clear();
  in_batch_.clear();
  for (Work& w : work) {
    if (!w.drafts || w.shape.depth <= level) continue;
    const size_t i = in_batch_.size();
    // CommitTokens may have swapped a block for its cached twin: fresh views every pass.
    store_.Assign(kv_.BlockTable(w.request->seq), &views_[i]);
    const int32_t* token = &w.chain[static_cast<size_t>(level - 1)];
    batch_.push_back(BatchSeq{.tokens = std::span<const int32_t>(token, 1),
                              .n_past = static_cast<int64_t>(w.state->tokens.size()),
                              .kv = views_[i].layers,
                              .logits = true});
    in_batch_.push_back(&w);
  }
  if (batch_.empty()) return Status::Ok();
  GANNET_ASSIGN_OR_RETURN(std::span<const float> logits, runner_->Execute(batch_));
  const size_t n_vocab = static_cast<size_t>(runner_->n_logits());
  for (size_t i = 0; i < in_batch_.size(); ++i) {
    Work& w = *in_batch_[i];
    w.state->tokens.push_back(w.chain[static_cast<size_t>(level - 1)]);
    TakeLevel(logits.subspan(i * n_vocab, n_vocab), &w);
  }
  return Status::Ok();
}

Draft ModelDrafter::Layout(const Work& w) {
  Draft d;
  for (size_t j = 0; j < w.chain.size(); ++j) {
    d.tokens.push_back(w.chain[j]);
    d.parents.push_back(static_cast<int32_t>(j) - 1);
  }
  // Alternatives after the whole chain, shallowest first: a draft cut to fit keeps the chain.
  for (size_t level = 0; level < w.alternatives.size() && level < w.chain.size(); ++level) {
    for (const int32_t t : w.alternatives[level]) {
      d.tokens.push_back(t);
      d.parents.push_back(static_cast<int32_t>(level) - 1);
    }
  }
  return d;
}

Status ModelDrafter::Propose(std::span<const DraftRequest> requests) {
  std::vector<Work> work(requests.size());
  int32_t budget = options_.max_batch_tokens;
  size_t n = 0;
  model_tokens_ = 0;
  for (const DraftRequest& r : requests) {
    if (r.draft != nullptr) *r.draft = {};
    model_tokens_ += std::max(ModelNodes(r), 0);
    if (Plan(r, &budget, &work[n])) ++n;
  }
  work.resize(n);
  if (work.empty()) return Status::Ok();
  int32_t depth = 0;
  for (const Work& w : work) depth = std::max(depth, w.drafts ? w.shape.depth : 0);
  Status st = CatchUp(work);
  for (int32_t level = 1; st.ok() && level < depth; ++level) st = DecodeLevel(work, level);
  if (!st.ok()) {
    // Their K/V may be partly written: start them afresh next time.
    for (const Work& w : work) Release(w.request->seq);
    return st;
  }
  for (const Work& w : work) {
    if (w.drafts && w.request->draft != nullptr) *w.request->draft = Layout(w);
  }
  return Status::Ok();
}

}  // namespace gannet::engine
