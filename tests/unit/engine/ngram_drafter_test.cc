#include "engine/ngram_drafter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace gannet::engine {
namespace {

void ExpectWellFormed(const Draft& d, int32_t max_nodes) {
  ASSERT_EQ(d.tokens.size(), d.parents.size());
  EXPECT_LE(d.tokens.size(), static_cast<size_t>(max_nodes));
  for (size_t i = 0; i < d.parents.size(); ++i) {
    EXPECT_GE(d.parents[i], -1);
    EXPECT_LT(d.parents[i], static_cast<int32_t>(i));
    // Siblings differ: a token appears once among the children of a node.
    for (size_t j = 0; j < i; ++j) {
      if (d.parents[j] == d.parents[i]) {
        EXPECT_NE(d.tokens[j], d.tokens[i]);
      }
    }
  }
}

TEST(NgramDrafterTest, ProposesWhatFollowedTheLongestEarlierMatch) {
  NgramDrafter d;
  d.Append(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 9, 9, 1, 2, 3});
  const Draft draft = d.Propose(4, 16);
  ExpectWellFormed(draft, 4);
  // "1 2 3" was followed by 4 5 6 7: a chain.
  EXPECT_EQ(draft.tokens, (std::vector<int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(draft.parents, (std::vector<int32_t>{-1, 0, 1, 2}));
  EXPECT_EQ(draft.match, 3);  // "1 2 3" matched; "9 1 2 3" never occurred before
  // Only the last token recurs: a one-token match.
  NgramDrafter one;
  one.Append(std::vector<int32_t>{5, 8, 6, 7, 5});
  EXPECT_EQ(one.Propose(4, 16).match, 1);
  // Longer matches than max_ngram count as max_ngram.
  NgramDrafter many;
  many.Append(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5});
  EXPECT_EQ(many.Propose(4, 16).match, 4);
}

TEST(NgramDrafterTest, SeveralContinuationsMakeATreeWithTheHeaviestChainFirst) {
  NgramDrafter d;
  // After "7 8": 1 2 (twice) and 3 4 (once).
  d.Append(std::vector<int32_t>{7, 8, 1, 2, 0, 7, 8, 3, 4, 0, 7, 8, 1, 2, 0, 7, 8});
  const Draft draft = d.Propose(8, 2);
  ExpectWellFormed(draft, 8);
  ASSERT_GE(draft.tokens.size(), 4u);
  EXPECT_EQ(draft.tokens[0], 1);
  EXPECT_EQ(draft.tokens[1], 2);
  EXPECT_EQ(draft.parents[1], 0);
  // 3 -> 4 is a second branch from the root.
  bool branch = false;
  for (size_t i = 2; i < draft.tokens.size(); ++i) {
    if (draft.tokens[i] == 3 && draft.parents[i] == -1) branch = true;
  }
  EXPECT_TRUE(branch);
}

TEST(NgramDrafterTest, TheIndexCoversAtMostMaxIndexedOfTheNewestTokens) {
  NgramDrafter d({.max_indexed = 64});
  // An early pattern, then 5000 distinct tokens, then the start of a recent pattern repeated.
  d.Append(std::vector<int32_t>{900001, 900002, 900003, 900004, 900005});
  std::vector<int32_t> filler(5000);
  std::iota(filler.begin(), filler.end(), 1000);
  for (size_t i = 0; i < filler.size(); i += 7) {
    d.Append(std::span<const int32_t>(filler).subspan(i, std::min<size_t>(7, filler.size() - i)));
    EXPECT_LE(d.indexed_tokens(), 64u);
  }
  d.Append(std::vector<int32_t>{7, 8, 9, 10, 11, 7, 8});
  EXPECT_EQ(d.Propose(3, 16).tokens, (std::vector<int32_t>{9, 10, 11}));  // recent: found
  d.Append(std::vector<int32_t>{900001, 900002});
  EXPECT_TRUE(d.Propose(3, 16).empty());  // 5000 tokens back: out of the index
  EXPECT_EQ(d.tokens().size(), 5014u);
}

TEST(NgramDrafterTest, NothingToProposeWithoutAnEarlierOccurrence) {
  NgramDrafter d;
  EXPECT_TRUE(d.Propose(8, 8).empty());
  d.Append(std::vector<int32_t>{1, 2, 3, 4});
  EXPECT_TRUE(d.Propose(8, 8).empty());
  d.Append(std::vector<int32_t>{2});
  EXPECT_TRUE(d.Propose(0, 8).empty());
  const Draft draft = d.Propose(8, 8);
  EXPECT_EQ(draft.tokens, (std::vector<int32_t>{3, 4, 2}));
}

TEST(NgramDrafterTest, RandomSequencesGiveWellFormedBoundedDrafts) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    NgramDrafter d({.min_ngram = 1, .max_ngram = 3, .max_matches = 6, .max_depth = 5});
    std::vector<int32_t> toks;
    for (int i = 0; i < 400; ++i) {
      d.Append(std::vector<int32_t>{static_cast<int32_t>(rng() % 6)});
      if (i % 7 != 0) continue;
      const int32_t max_nodes = static_cast<int32_t>(rng() % 20);
      const Draft draft = d.Propose(max_nodes, 5);
      ExpectWellFormed(draft, max_nodes);
      // Every chain of the draft occurred after an occurrence of the last token.
      for (size_t j = 0; j < draft.parents.size(); ++j) {
        int32_t depth = 1;
        for (int32_t p = draft.parents[j]; p >= 0; p = draft.parents[static_cast<size_t>(p)])
          ++depth;
        EXPECT_LE(depth, 5);
      }
    }
  }
}

}  // namespace
}  // namespace gannet::engine
