// Lazy constrained decoding: a grammar that applies only from the first trigger in the output on.
//
// A model that may either answer freely or start a structured part (a tool call after a marker)
// samples unconstrained until a trigger appears; from then on the grammar constrains the rest.
// The grammar describes the structured part from the trigger's first byte (or token) on, so the
// trigger itself is the first thing it reads. Triggers:
//   - tokens: a sampled token with one of these ids (a control token such as [TOOL_CALLS], which
//     the grammar names as <[id]>; grammar/gbnf.h); the grammar reads the token's symbol;
//   - words: text anywhere in the output (also across tokens); the grammar reads from the word's
//     first byte on, including whatever the token that completed it carried after it;
//   - start_words: text at the very start of the output, after blanks (space, tab, newlines),
//     which the grammar does not read.
// The earliest trigger wins. A token that completes a trigger whose text the grammar refuses
// (the bytes after the word in the same token) is not allowed: TriggerWatch::OrRefused marks such
// tokens, so a sample masks them out and samples again.
//
// TriggerWatch is one sample's watch. It sees each token's bytes as the grammar's vocabulary has
// them (grammar/token_mask.h: control tokens have none).
//
// Thread-safety: GrammarTriggers is immutable once shared; a TriggerWatch is one sample's (copy it
// per sample).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/matcher.h"
#include "grammar/token_mask.h"

namespace gannet::grammar {

struct GrammarTriggers {
  std::vector<int32_t> tokens;
  std::vector<std::string> words;        // non-empty
  std::vector<std::string> start_words;  // non-empty
  bool empty() const { return tokens.empty() && words.empty() && start_words.empty(); }
};

class TriggerWatch {
 public:
  explicit TriggerWatch(std::shared_ptr<const GrammarTriggers> triggers);

  // What a token that fires a trigger gives the grammar to read first.
  struct Fire {
    bool by_token = false;  // the token itself (its symbol)
    std::string text;       // else: the bytes from the trigger on
  };
  // The trigger `token` (with `bytes`) would fire, if any; the watch is unchanged.
  std::optional<Fire> Check(int32_t token, std::string_view bytes) const;

  // The token was sampled while the watch was not fired: when it fires a trigger, the matcher
  // reads the trigger's part (Fire) and the watch is fired. False when the matcher refuses that
  // part: matcher and watch are then unchanged (the token must not be taken; see OrRefused).
  // REQUIRES: !fired().
  bool Observe(const TokenVocabulary& vocab, int32_t token, Matcher* matcher);

  // Sets the bits of the tokens that would fire a trigger whose part the matcher refuses. Costs
  // one Check per token: meant for the rare step where a sampled token was refused.
  void OrRefused(const TokenVocabulary& vocab, const Matcher& matcher,
                 std::span<uint32_t> bitmask) const;

  bool fired() const { return fired_; }

 private:
  bool Accepts(const TokenVocabulary& vocab, int32_t token, const Fire& fire,
               Matcher* matcher) const;

  std::shared_ptr<const GrammarTriggers> triggers_;
  size_t keep_ = 0;         // bytes of the text kept: the longest word's length - 1
  std::string tail_;        // the text's last keep_ bytes
  bool start_open_ = true;  // the text so far (blanks dropped) may still begin a start word
  std::string start_;       // the text so far without its leading blanks, while start_open_
  bool fired_ = false;
};

}  // namespace gannet::grammar
