// NgramDrafter: speculative drafts with no second model (prompt lookup, extended to trees).
//
// Text that a model writes about its input repeats its input: a code edit copies most of the file,
// an answer quotes the document, a summary reuses its phrases. The drafter indexes every n-gram
// (n = 1..max_ngram) of a sequence's tokens (prompt and output) by where it occurred; to propose,
// it looks up the sequence's last n tokens, longest n first, and takes what followed each earlier
// occurrence (most recent first) as candidate continuations. The candidates are merged into a trie
// whose node weights count the occurrences behind them (a longer matched n-gram counts more); the
// heaviest nodes, at most max_nodes, form the draft tree (engine/scheduler.h Draft), laid out
// depth-first with the heaviest child first, so the likeliest chain occupies the first slots and
// accepting it needs no K/V compaction.
//
// Cost: Append is O(max_ngram) hash updates per token; Propose is O(max_matches * max_depth).
// Memory: O(max_ngram) entries per indexed token (at most max_indexed tokens), each key keeping
// at most kMaxPositions occurrences; the tokens themselves, 4 bytes each.
// Thread-safety: none; one per sequence, used by one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/scheduler.h"

namespace gannet::engine {

struct NgramDrafterOptions {
  int32_t min_ngram = 1;    // shortest suffix looked up
  int32_t max_ngram = 4;    // longest suffix looked up (>= min_ngram)
  int32_t max_matches = 8;  // earlier occurrences taken as candidates
  int32_t max_depth = 16;   // tokens of one candidate continuation
  // Tokens the index covers at most: past this, it is rebuilt over the newest half, so its memory
  // stays bounded however long the sequence grows (and the work per token stays O(1) amortized).
  int32_t max_indexed = 32768;
};

class NgramDrafter {
 public:
  static constexpr size_t kMaxPositions = 64;  // kept per n-gram (the most recent ones)

  explicit NgramDrafter(const NgramDrafterOptions& options = {});

  // Appends tokens to the indexed sequence.
  void Append(std::span<const int32_t> tokens);
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // The newest tokens the index covers (at most options.max_indexed).
  size_t indexed_tokens() const { return tokens_.size() - index_start_; }

  // A draft of at most max_nodes tokens continuing tokens() (empty when no n-gram of its end
  // occurred before, or max_nodes <= 0). At most max_depth levels deep. Its `match` is the length
  // of the longest n-gram of the end that occurred before.
  Draft Propose(int32_t max_nodes, int32_t max_depth) const;

 private:
  struct Candidate {
    int32_t start = 0;   // index in tokens_ of the first continuation token
    int32_t weight = 0;  // the matched n-gram's length
  };
  uint64_t Hash(size_t end, int32_t n) const;  // of tokens_[end - n, end)
  void Index(size_t at);                       // the n-grams ending just before tokens_[at]
  void Candidates(std::vector<Candidate>* out) const;

  NgramDrafterOptions options_;
  std::vector<int32_t> tokens_;
  // index_[n - 1]: hash of an n-gram -> the positions just after its occurrences (each with at
  // least one token following), oldest first.
  std::vector<std::unordered_map<uint64_t, std::vector<int32_t>>> index_;
  size_t index_start_ = 0;  // the first token the index covers
};

}  // namespace gannet::engine
