// Grammar: a compiled GBNF grammar, immutable, the shared half of constrained decoding.
//
// Compile() parses the text (grammar/gbnf.h), lowers groups and repetitions to rules and flattens
// every alternative of every rule into one array of items ending in kEnd. A grammar position is an
// index into that array; a Matcher's stacks are stacks of positions (grammar/matcher.h).
//
// Left recursion is rejected, with the cycle named: a rule that can reach itself without consuming
// a character (directly, through other rules, or behind a prefix that can match "") would make the
// matcher's expansion loop. Rewrite `expr ::= expr "+" term | term` as `expr ::= term ("+" term)*`.
//
// Thread-safety: a Grammar is immutable after Compile(); share it freely across threads and
// sequences through the shared_ptr.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "grammar/gbnf.h"

namespace gannet::grammar {

class Grammar {
 public:
  struct Item {
    enum class Kind : uint8_t { kEnd, kRule, kChars };
    Kind kind = Kind::kEnd;
    uint32_t arg = 0;  // kRule: the rule; kChars: the class
  };

  // Parses and compiles GBNF text; errors name line and column (see ParseGbnf), and left
  // recursion is kInvalidArgument naming the rules of the cycle.
  static Result<std::shared_ptr<const Grammar>> Compile(std::string_view gbnf,
                                                        const GbnfLimits& limits = {});

  const Item& item(uint32_t pos) const { return items_[pos]; }
  // The start position of each alternative of `rule`.
  std::span<const uint32_t> alternatives(uint32_t rule) const {
    return {alt_starts_.data() + rule_alts_[rule], rule_alts_[rule + 1] - rule_alts_[rule]};
  }
  uint32_t root() const { return root_; }
  size_t num_rules() const { return names_.size(); }
  size_t num_items() const { return items_.size(); }
  const std::string& rule_name(uint32_t rule) const { return names_[rule]; }

  bool ClassContains(uint32_t cls, uint32_t cp) const {
    if (cp < 128) return (ascii_[cls][cp >> 6] >> (cp & 63)) & 1;
    return classes_[cls].Contains(cp);
  }
  bool ClassIntersects(uint32_t cls, uint32_t lo, uint32_t hi) const {
    return classes_[cls].Intersects(lo, hi);
  }
  const CharClass& char_class(uint32_t cls) const { return classes_[cls]; }

 private:
  Grammar() = default;

  std::vector<Item> items_;
  std::vector<uint32_t> alt_starts_;
  std::vector<uint32_t> rule_alts_;  // [num_rules + 1] offsets into alt_starts_
  std::vector<std::string> names_;
  std::vector<CharClass> classes_;
  std::vector<std::array<uint64_t, 2>> ascii_;  // per class: membership of code points 0..127
  uint32_t root_ = 0;
};

}  // namespace gannet::grammar
