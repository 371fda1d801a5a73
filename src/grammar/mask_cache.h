// MaskCache: a token mask that stays fast where the grammar admits almost any character.
//
// The exact trie walk (TokenVocabulary::FillNextTokenMask) costs one matcher step per trie node it
// visits, so inside a JSON string, where nearly every byte is allowed, it visits most of the trie.
// There the matcher's state is a self-loop: for most code points c, stepping state S by c gives S
// back, stack for stack (the string body is a right-recursive X*, a tail call, and stack nodes are
// hash-consed). A token made only of such code points is then accepted, and any other token is
// accepted exactly when the rest of it, from its first code point that is not a self-loop, is
// accepted from S. So the mask is
//
//   (tokens whose code points all self-loop)  |  exact walk of S over a trie of those rests,
//
// and both parts depend on S only through
//   K, the distinct character classes at S's stack tops, which fix the signature of a code point
//      (the set of K's classes that contain it): stepping depends on nothing else; and
//   L, the signatures whose step gives S back (found per mask by stepping one representative code
//      point per signature that occurs in the vocabulary).
// The cache keeps, per (K, L), the bitset of the first part and the trie of the rests (mostly
// tokens with a quote or a backslash, cheap to walk since they leave the string). Limits
// (MatcherOptions) are respected exactly: a self-loop step is S -> S, and the rests are walked by
// the exact walk. States that are not self-loops, have more than max_classes classes at their tops
// or are inside a split UTF-8 character take the exact walk over the whole vocabulary.
//
// Whole masks per state: a state whose mask took the exact walk and cost more than
// MaskCacheOptions::min_state_steps byte steps (one that admits many bytes without being a
// self-loop, such as a bounded repetition `[^"]{0,12}`, whose positions all differ) has its whole
// mask kept, keyed by the state's content: every stack's grammar positions from top to bottom (not
// the matcher's arena ids, which differ between matchers), the partial UTF-8 character and the
// matcher's limits. The walk depends on nothing else (the limits are checked on stack depths and
// counts, which the positions fix), so any matcher of this grammar in that state gets the same
// mask: the states of a schema's repeated items, and of every request with the same schema, are
// walked once. Stacks with more than kMaxStateKey positions in all are not kept, and whole masks
// take at most half of MaskCacheOptions::max_bytes.
//
// Memory: entries are built lazily on first use and never evicted; their heap (a bitset of
// n_vocab bits and a trie of token suffixes, at most the vocabulary trie, per (K, L); a list of
// code points per K) is counted, and once it reaches MaskCacheOptions::max_bytes no entry is
// added: uncached states then take the exact walk. (The vocabulary's distinct code points are the
// TokenVocabulary's, computed once per vocabulary.)
//
// Thread-safety: FillNextTokenMask may run concurrently on different matchers (one cache shared
// by every sequence using this grammar and vocabulary). Entries are immutable once built, held by
// shared_ptr and published under a mutex; two threads missing at once may both build, one copy
// is kept.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grammar/byte_trie.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"

namespace gannet::grammar {

struct MaskCacheOptions {
  size_t max_bytes = size_t{64} << 20;  // heap of the entries; past it nothing more is cached
  size_t max_classes = 16;              // distinct classes at the stack tops (at most 32)
  // A state whose exact walk takes more byte steps than this keeps its whole mask (n_vocab / 8
  // bytes); cheaper states are walked each time.
  size_t min_state_steps = 4096;
};

class MaskCache {
 public:
  MaskCache(std::shared_ptr<const TokenVocabulary> vocab, std::shared_ptr<const Grammar> grammar,
            const MaskCacheOptions& options = {});

  // Exactly TokenVocabulary::FillNextTokenMask (bit for bit), false past the same work budget
  // (the fast path's work counts against it too). A matcher of another grammar gets the exact
  // walk. REQUIRES: bitmask.size() >= vocab.mask_words().
  [[nodiscard]] bool FillNextTokenMask(const Matcher& matcher, std::span<uint32_t> bitmask) const;

  const TokenVocabulary& vocab() const { return *vocab_; }
  const Grammar* grammar() const { return grammar_.get(); }

  struct Stats {
    size_t entries = 0;  // (K, L) entries
    size_t bytes = 0;    // counted heap of all entries
    size_t fast = 0;     // masks filled by the self-loop path
    size_t exact = 0;    // masks filled by the exact walk
    size_t states = 0;   // whole masks kept per state
    size_t whole = 0;    // masks copied from a kept state
  };
  Stats stats() const;

 private:
  using Classes = std::vector<uint32_t>;  // K: sorted distinct class ids
  struct ClassEntry {
    // One representative code point per signature that occurs in the vocabulary (signature 0,
    // in no class, left out: it is always rejected).
    std::vector<std::pair<uint32_t, uint32_t>> signatures;  // (signature, code point)
  };
  struct LoopEntry {
    std::vector<uint32_t> accepted;  // [mask_words] tokens whose code points all self-loop
    ByteTrie rests;                  // the other tokens, from their first non-self-loop byte
  };

  std::shared_ptr<const ClassEntry> GetClassEntry(const Classes& k) const;
  std::shared_ptr<const LoopEntry> GetLoopEntry(const Classes& k,
                                                const std::vector<uint32_t>& loops) const;
  uint32_t Signature(const Classes& k, uint32_t cp) const;
  // The fill without the per-state masks; false past the work budget (`*steps` is then
  // unspecified), else `*steps` gets the exact walk's byte steps (0 when the self-loop path filled
  // it). REQUIRES: the mask cleared, the matcher of this grammar.
  bool FillUncached(const Matcher& matcher, std::span<uint32_t> bitmask, size_t* steps) const;
  bool Exact(const Matcher& matcher, std::span<uint32_t> bitmask, size_t* steps) const;
  // The state's content (see above) as bytes; false when it has over kMaxStateKey positions.
  static bool StateKey(const Matcher& matcher, std::string* key);
  static constexpr size_t kMaxStateKey = 4096;

  std::shared_ptr<const TokenVocabulary> vocab_;
  std::shared_ptr<const Grammar> grammar_;
  MaskCacheOptions options_;

  mutable std::mutex mu_;  // guards everything below
  mutable std::map<Classes, std::shared_ptr<const ClassEntry>> class_entries_;
  mutable std::map<std::pair<Classes, std::vector<uint32_t>>, std::shared_ptr<const LoopEntry>>
      loop_entries_;
  mutable std::unordered_map<std::string, std::shared_ptr<const std::vector<uint32_t>>> states_;
  mutable size_t bytes_ = 0;
  mutable size_t state_bytes_ = 0;  // of states_, at most half of max_bytes
  mutable bool full_ = false;
  mutable Stats stats_;
};

}  // namespace gannet::grammar
