// Matcher: one sequence's incremental match against a Grammar, byte by byte.
//
// The state is a pushdown automaton's: a set of stacks of grammar positions (as llama.cpp's
// llama_grammar), one stack per way the input so far can be parsed. Each stack's top is a
// character class to match next; the positions below are where to continue when the rule above
// ends; an empty stack means the root has ended. Accepting a code point keeps the stacks whose top
// contains it, advances them and expands rule references until every top is a class again.
//
// Stacks are persistent: nodes (position, parent) live in an arena and are hash-consed, so two
// stacks are equal exactly when their top node ids are, duplicates merge for free, and stacks share
// their common bottoms. A reference whose continuation is the end of the alternative pushes
// nothing (a tail call), so right recursion such as X* does not grow the stacks.
//
// Bytes: input arrives as UTF-8 bytes that may split a code point across calls (tokens). A
// partial code point is kept; it is accepted while some stack's top contains a code point that
// starts with those bytes. Only strict UTF-8 is accepted (no overlong forms, surrogates, or bytes
// that cannot start or continue a character).
//
// Limits (MatcherOptions): the number of live stacks (an ambiguous grammar could otherwise double
// them with each character), the depth of a stack, and the work of one expansion. Input that would
// exceed one is rejected like input the grammar does not allow (AcceptBytes returns false, the
// state is unchanged) and limit_exceeded() says why. Create() fails with kResourceExhausted when
// the grammar's start state alone exceeds them.
//
// Thread-safety: none; one Matcher per sequence. Copying is cheap and independent (n > 1,
// speculative drafts): copies share only the immutable Grammar.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "grammar/grammar.h"

namespace gannet::grammar {

struct MatcherOptions {
  size_t max_stacks = 1024;              // live stacks after any code point
  size_t max_stack_depth = 1 << 16;      // positions on one stack
  size_t max_expansion_steps = 1 << 16;  // rule expansions while accepting one code point
  // Work of one token mask (grammar/token_mask.h): stacks examined plus rule expansions, summed
  // over every byte the mask's trie walk steps. A JSON-schema grammar's exact walk over a 262k
  // vocabulary inside a string costs a few million; an ambiguous grammar keeping hundreds of
  // stacks alive would cost billions (seconds per token while the engine waits), so past this
  // the mask fails instead (about half a second on one core).
  uint64_t max_mask_work = uint64_t{1} << 26;
};

class Matcher {
 public:
  static Result<Matcher> Create(std::shared_ptr<const Grammar> grammar,
                                const MatcherOptions& options = {});

  Matcher(const Matcher&) = default;
  Matcher& operator=(const Matcher&) = default;
  Matcher(Matcher&&) = default;
  Matcher& operator=(Matcher&&) = default;
  Matcher Clone() const { return *this; }

  // Feeds bytes. All or nothing: returns false and leaves the state unchanged when some byte is
  // not allowed (or a limit would be exceeded). Empty input returns true.
  bool AcceptBytes(std::string_view bytes);
  // Feeds one code point as a whole, e.g. a token symbol (kTokenSymbolBase + id, grammar/gbnf.h)
  // that no bytes spell. All or nothing, as AcceptBytes; false while a code point is half read.
  bool AcceptCodepoint(uint32_t cp);

  // True when the root can end here: some stack is empty and no code point is half read.
  bool IsComplete() const;
  // True when some non-empty input could be accepted next.
  bool CanContinue() const;
  // True when the last rejected input was rejected for a limit rather than by the grammar.
  bool limit_exceeded() const { return limit_exceeded_; }
  // Work done by this matcher so far (stacks examined plus rule expansions; see max_mask_work);
  // copies carry it on.
  uint64_t work() const { return work_done_; }
  const MatcherOptions& options() const { return options_; }
  size_t num_stacks() const { return state_.tops.size(); }
  const Grammar& grammar() const { return *grammar_; }

  // The state between bytes, exposed for the token-mask walk (grammar/token_mask.h), which steps it
  // byte by byte along a trie with exactly AcceptBytes' rules.
  static constexpr int32_t kEmptyStack = -1;
  struct Utf8Partial {
    uint32_t bits = 0;      // the value bits of the bytes so far
    uint8_t remaining = 0;  // continuation bytes still expected; 0: between code points
    uint8_t next_lo = 0x80, next_hi = 0xBF;  // the range the next continuation byte must be in
  };
  struct State {
    std::vector<int32_t> tops;  // sorted, unique node ids (kEmptyStack: an empty stack)
    Utf8Partial partial;
  };
  // Steps `in` by one byte into `*out` (which must not alias in); false when the byte is rejected.
  bool StepByte(const State& in, uint8_t byte, State* out);
  const State& state() const { return state_; }
  // The grammar position (a kChars item) at stack node `node`. REQUIRES: a node of state().tops
  // other than kEmptyStack.
  uint32_t position(int32_t node) const { return nodes_[node].pos; }
  // The node below `node` on its stack (kEmptyStack at the bottom). REQUIRES: as position().
  int32_t parent(int32_t node) const { return nodes_[node].parent; }
  // Arena bookkeeping for the mask walk: nodes made after Mark() are dropped by Rollback().
  size_t Mark() const { return nodes_.size(); }
  void Rollback(size_t mark);

 private:
  struct Node {
    uint32_t pos;
    int32_t parent;  // kEmptyStack at the bottom
    uint32_t depth;
  };

  Matcher(std::shared_ptr<const Grammar> grammar, const MatcherOptions& options)
      : grammar_(std::move(grammar)), options_(options) {}

  // Interns (pos, parent); -2 when the stack would be deeper than allowed.
  int32_t Intern(uint32_t pos, int32_t parent);
  static constexpr int32_t kTooDeep = -2;
  // Expands the unsettled stack "pos on parent" into settled tops appended to *out.
  bool Expand(uint32_t pos, int32_t parent, std::vector<int32_t>* out);
  bool StepCodepoint(const std::vector<int32_t>& tops, uint32_t cp, std::vector<int32_t>* out);
  bool AnyTopIntersects(const std::vector<int32_t>& tops, uint32_t lo, uint32_t hi);
  bool Finish(std::vector<int32_t>* tops);
  void CompactIfLarge();

  std::shared_ptr<const Grammar> grammar_;
  MatcherOptions options_;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, int32_t> index_;  // (pos << 32 | parent + 1) -> node id
  State state_;
  size_t compacted_size_ = 0;
  bool limit_exceeded_ = false;
  std::vector<std::pair<uint32_t, int32_t>> work_;  // scratch of Expand
  size_t steps_ = 0;                                // expansion steps of the current code point
  uint64_t work_done_ = 0;                          // see work()
};

}  // namespace gannet::grammar
