// TokenVocabulary: which tokens a grammar allows next, as a bitmask over the vocabulary.
//
// The vocabulary arrives as token byte strings (this module knows no tokenizer) plus the ids that
// end generation. Create() builds a byte trie of the tokens once; it is immutable and shared by
// every sequence of a model.
//
// FillNextTokenMask walks the trie depth first, stepping a scratch copy of the matcher's state one
// byte per edge with the same rule as Matcher::AcceptBytes (grammar/matcher.h), and prunes a
// subtree at its first rejected byte. The state carries every live stack at once, so each trie node
// is stepped once for all stacks (rather than once per stack, as llama.cpp walks its candidates),
// and a prefix shared by many tokens is matched once. Stack nodes made during the walk are rolled
// back as it leaves a subtree. The result is exactly "AcceptBytes(token) would return true" for
// every token (the unit test checks this against that brute force).
//
// Inside a JSON string, where nearly every byte is allowed, the walk visits most of the trie;
// MaskCache (grammar/mask_cache.h) gives the same masks fast there.
//
// Work: each mask is bounded by MatcherOptions::max_mask_work (stacks examined plus rule
// expansions over the walk); past it the mask fails rather than hold a sequence for seconds.
//
// Rules: an end-of-generation token is allowed exactly when the matcher IsComplete(); a token with
// no bytes that is not end-of-generation (a control token, e.g. a tool-call marker) is the one
// symbol kTokenSymbolBase + id (grammar/gbnf.h): allowed exactly where the grammar names it as
// `<[id]>`, never by text (so a grammar that names no token never allows one).
//
// Thread-safety: a TokenVocabulary is immutable; FillNextTokenMask and AcceptToken may run
// concurrently on different matchers. FillNextTokenMask allocates its scratch per call.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "grammar/byte_trie.h"
#include "grammar/matcher.h"

namespace gannet::grammar {

class TokenVocabulary {
 public:
  // tokens[i] is token i's bytes; eog_ids lists the end-of-generation tokens (each in range).
  static Result<std::shared_ptr<const TokenVocabulary>> Create(std::vector<std::string> tokens,
                                                               std::span<const int32_t> eog_ids);

  size_t size() const { return tokens_.size(); }
  // The number of 32-bit words of a mask: bit i of word i / 32 is token i.
  size_t mask_words() const { return (tokens_.size() + 31) / 32; }
  bool is_eog(int32_t id) const { return is_eog_[id]; }
  const std::string& token(int32_t id) const { return tokens_[id]; }

  // Sets bit i of `bitmask` when token i may come next and clears every other bit. False when
  // that would take more than the matcher's MatcherOptions::max_mask_work (the mask is then
  // unusable: the grammar is too ambiguous to constrain this vocabulary at token speed).
  // REQUIRES: bitmask.size() >= mask_words().
  [[nodiscard]] bool FillNextTokenMask(const Matcher& matcher, std::span<uint32_t> bitmask) const;

  // Advances the matcher by token `id`; false (matcher unchanged) when it is not allowed. An
  // end-of-generation token is accepted when the matcher IsComplete() and leaves it unchanged.
  bool AcceptToken(Matcher* matcher, int32_t id) const;

  // Sets the bits of the tokens without bytes whose symbol the matcher accepts next (part of
  // FillNextTokenMask; MaskCache calls it too). Costs nothing unless a stack top's class names
  // token symbols.
  void OrSymbols(const Matcher& matcher, std::span<uint32_t> bitmask) const;
  bool is_symbol(int32_t id) const { return tokens_[id].empty() && !is_eog_[id]; }

 private:
  friend class MaskCache;  // reads tokens_, eog_ids_ and trie_

  TokenVocabulary() = default;

  std::vector<std::string> tokens_;
  std::vector<bool> is_eog_;
  std::vector<int32_t> eog_ids_;
  ByteTrie trie_;  // every token but the end-of-generation and empty ones
  // Sorted distinct complete code points of the tokens (MaskCache's signatures), once per
  // vocabulary.
  std::vector<uint32_t> code_points_;
};

}  // namespace gannet::grammar
