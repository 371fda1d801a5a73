#include "engine/drafter.h"

#include <gtest/gtest.h>

#include <vector>

#include "engine/ngram_drafter.h"

namespace gannet::engine {
namespace {

// A model-like drafter: proposes [seq, seq] for every request, counts its budgets as model tokens.
class FakeModelDrafter : public Drafter {
 public:
  Status Propose(std::span<const DraftRequest> requests) override {
    model_tokens_ = 0;
    for (const DraftRequest& r : requests) {
      seen.push_back(r.seq);
      model_tokens_ += ModelNodes(r);
      *r.draft = ModelNodes(r) > 0
                     ? Draft{.tokens = {static_cast<int32_t>(r.seq), static_cast<int32_t>(r.seq)},
                             .parents = {-1, 0}}
                     : Draft{};
    }
    return Status::Ok();
  }
  int32_t last_model_tokens() const override { return model_tokens_; }
  void ReleaseIf(const std::function<bool(SeqId)>& gone) override {
    std::erase_if(seen, [&](SeqId s) { return gone(s); });
  }
  int32_t num_seqs() const override { return static_cast<int32_t>(seen.size()); }

  std::vector<SeqId> seen;

 private:
  int32_t model_tokens_ = 0;
};

TEST(DrafterTest, NgramIndexesEachSequenceIncrementally) {
  std::unique_ptr<Drafter> d = MakeNgramDrafter();
  // The sequence grows token by token; the draft each time is what an index built at once gives.
  const std::vector<int32_t> text = {5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 1, 2, 5, 6, 7};
  for (size_t n = 1; n <= text.size(); ++n) {
    Draft got;
    const std::span<const int32_t> tokens(text.data(), n);
    const DraftRequest r{.seq = 3, .tokens = tokens, .max_nodes = 4, .draft = &got};
    ASSERT_TRUE(d->Propose({&r, 1}).ok());
    NgramDrafter whole;
    whole.Append(tokens);
    const Draft want = whole.Propose(4, 4);
    EXPECT_EQ(got.tokens, want.tokens) << n;
    EXPECT_EQ(got.parents, want.parents) << n;
  }
  EXPECT_EQ(d->last_model_tokens(), 0);
  EXPECT_EQ(d->num_seqs(), 1);
  d->ReleaseIf([](SeqId s) { return s == 3; });
  EXPECT_EQ(d->num_seqs(), 0);
}

TEST(DrafterTest, ChainedGivesTheRestWhatTheFirstLeavesEmpty) {
  std::unique_ptr<Drafter> ngram = MakeNgramDrafter();
  FakeModelDrafter model;
  std::unique_ptr<Drafter> d = MakeChainedDrafter(ngram.get(), &model);
  const std::vector<int32_t> repeats = {1, 2, 3, 1, 2, 3, 1, 2};  // ngram: 3, 1, 2, ...
  const std::vector<int32_t> fresh = {10, 11, 12, 13};            // no earlier match
  Draft a, b;
  const DraftRequest rs[] = {{.seq = 1, .tokens = repeats, .max_nodes = 3, .draft = &a},
                             {.seq = 2, .tokens = fresh, .max_nodes = 5, .draft = &b}};
  ASSERT_TRUE(d->Propose(rs).ok());
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.tokens[0], 3);
  EXPECT_EQ(b.tokens, (std::vector<int32_t>{2, 2}));  // the model's
  EXPECT_EQ(model.seen, std::vector<SeqId>{2});
  EXPECT_EQ(d->last_model_tokens(), 5);  // only the model's budgets are charged
  EXPECT_EQ(d->num_seqs(), 3);           // the n-gram index of both, the model's of one
  d->ReleaseIf([](SeqId) { return true; });
  EXPECT_EQ(d->num_seqs(), 0);
  // Nothing left for the model: it is not asked, and nothing is charged.
  ASSERT_TRUE(d->Propose({&rs[0], 1}).ok());
  EXPECT_EQ(d->last_model_tokens(), 0);
  EXPECT_TRUE(model.seen.empty());
}

TEST(DrafterTest, ModelNodesBoundOnlyTheModelsDrafts) {
  // ngram+self: the n-gram lookup costs no pass and drafts max_nodes; the model may draft fewer.
  std::unique_ptr<Drafter> ngram = MakeNgramDrafter();
  FakeModelDrafter model;
  std::unique_ptr<Drafter> d = MakeChainedDrafter(ngram.get(), &model);
  const std::vector<int32_t> repeats = {1, 2, 3, 4, 1, 2, 3, 4, 1};  // ngram: 2, 3, 4, ...
  const std::vector<int32_t> fresh = {10, 11, 12, 13};
  Draft a, b, c;
  const DraftRequest rs[] = {
      {.seq = 1, .tokens = repeats, .max_nodes = 3, .model_nodes = 0, .draft = &a},
      {.seq = 2, .tokens = fresh, .max_nodes = 5, .model_nodes = 0, .draft = &b},
      {.seq = 3, .tokens = fresh, .max_nodes = 5, .model_nodes = 2, .draft = &c}};
  ASSERT_TRUE(d->Propose(rs).ok());
  EXPECT_EQ(a.tokens, (std::vector<int32_t>{2, 3, 4}));
  EXPECT_TRUE(b.empty());  // the model may make none
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(d->last_model_tokens(), 2);                    // what the model may make, not max_nodes
  EXPECT_EQ(ModelNodes(DraftRequest{.max_nodes = 4}), 4);  // -1: max_nodes
  EXPECT_EQ(ModelNodes(DraftRequest{.max_nodes = 4, .model_nodes = 9}), 4);
}

}  // namespace
}  // namespace gannet::engine
