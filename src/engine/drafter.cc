#include "engine/drafter.h"

#include <unordered_map>
#include <vector>

#include "engine/ngram_drafter.h"

namespace gannet::engine {
namespace {

class NgramDrafters final : public Drafter {
 public:
  Status Propose(std::span<const DraftRequest> requests) override {
    for (const DraftRequest& r : requests) {
      if (r.draft == nullptr) continue;
      NgramDrafter& d = index_[r.seq];
      // A sequence's tokens only grow: index what is new.
      const size_t have = d.tokens().size();
      if (have < r.tokens.size()) d.Append(r.tokens.subspan(have));
      *r.draft = r.max_nodes > 0 ? d.Propose(r.max_nodes, r.max_nodes) : Draft{};
    }
    return Status::Ok();
  }
  int32_t last_model_tokens() const override { return 0; }
  void ReleaseIf(const std::function<bool(SeqId)>& gone) override {
    std::erase_if(index_, [&](const auto& kv) { return gone(kv.first); });
  }
  int32_t num_seqs() const override { return static_cast<int32_t>(index_.size()); }

 private:
  std::unordered_map<SeqId, NgramDrafter> index_;
};

class ChainedDrafter final : public Drafter {
 public:
  ChainedDrafter(Drafter* first, Drafter* rest) : first_(first), rest_(rest) {}

  Status Propose(std::span<const DraftRequest> requests) override {
    const Status first = first_->Propose(requests);
    model_tokens_ = first_->last_model_tokens();
    left_.clear();
    for (const DraftRequest& r : requests) {
      if (r.draft != nullptr && r.draft->empty()) left_.push_back(r);
    }
    if (left_.empty()) return first;
    const Status rest = rest_->Propose(left_);
    model_tokens_ += rest_->last_model_tokens();
    return first.ok() ? rest : first;
  }
  int32_t last_model_tokens() const override { return model_tokens_; }
  void ReleaseIf(const std::function<bool(SeqId)>& gone) override {
    first_->ReleaseIf(gone);
    rest_->ReleaseIf(gone);
  }
  int32_t num_seqs() const override { return first_->num_seqs() + rest_->num_seqs(); }

 private:
  Drafter* first_;
  Drafter* rest_;
  std::vector<DraftRequest> left_;
  int32_t model_tokens_ = 0;
};

}  // namespace

std::unique_ptr<Drafter> MakeNgramDrafter() { return std::make_unique<NgramDrafters>(); }

std::unique_ptr<Drafter> MakeChainedDrafter(Drafter* first, Drafter* rest) {
  return std::make_unique<ChainedDrafter>(first, rest);
}

}  // namespace gannet::engine
