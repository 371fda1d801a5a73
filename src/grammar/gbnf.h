// GBNF parser: the grammar text llama.cpp users write, parsed into rules over code-point classes.
//
// Syntax (llama.cpp's grammars/README.md): `name ::= alternatives`, `|`, sequences, string
// literals "..." with escapes \n \t \r \\ \" \' \[ \] \xHH \uHHHH \UHHHHHHHH, character classes
// [a-z0-9_] and negated [^"\\], `.` (any code point), grouping ( ), postfix * + ? {m} {m,} {m,n},
// comments from # to the end of the line, `root` as the start rule; and `<[ID]>`, the token with id
// ID (decimal) itself, as llama.cpp's grammars write it: a control token (a tool-call marker
// such as Mistral's [TOOL_CALLS]) has no text for a literal to match, so a grammar names it by id.
// Newlines are whitespace everywhere: a rule ends where the next `name ::=` begins, so a rule may
// continue on a line that starts with `|`. Identifiers are [A-Za-z0-9_-]+. The text is UTF-8 and
// characters are code points.
//
// Groups and repetitions are lowered to generated rules here, so the result is plain BNF:
//   X*      R ::= X R | ""            (right recursive: the matcher's stacks do not grow with it)
//   X+      X followed by X*
//   X?      R ::= X | ""
//   X{m,n}  m copies of X, then n-m nested optional rules (X (X ...)?)?
//
// The parser is a loop over tokens with an explicit stack of open groups (no recursion), and every
// resource a grammar can ask for is bounded by GbnfLimits, so a hostile grammar gets an error
// naming the line and column instead of a huge allocation or a stack overflow.
//
// Thread-safety: ParseGbnf is a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace gannet::grammar {

// A token reference `<[ID]>` is the code point kTokenSymbolBase + ID, outside Unicode: no text
// can spell it and no negated class or `.` contains it; the token vocabulary (grammar/token_mask.h)
// maps a token without bytes to its symbol.
inline constexpr uint32_t kTokenSymbolBase = 0x110000;
inline constexpr uint32_t kMaxTokenSymbolId = 0xFFFFFF;  // the largest ID a grammar may name

struct GbnfLimits {
  size_t max_text_bytes = 1 << 20;  // the grammar text
  size_t max_rules = 1 << 16;       // user and generated rules together
  size_t max_symbols = 1 << 20;     // symbols in all alternatives of all rules
  size_t max_nesting = 128;         // depth of ( ) groups
  uint32_t max_repetition = 10000;  // the largest m or n in {m,n}
};

// A closed range of code points.
struct CharRange {
  uint32_t lo = 0;
  uint32_t hi = 0;
  bool operator==(const CharRange&) const = default;
};

// A set of code points: `ranges` sorted, merged (no two overlap or touch); negated means the
// complement of their union within Unicode (0..U+10FFFF: token symbols are never in a negated
// class). `.` is the negated empty class.
struct CharClass {
  bool negated = false;
  std::vector<CharRange> ranges;
  bool operator==(const CharClass&) const = default;
  bool Contains(uint32_t cp) const;
  // True when some code point in [lo, hi] is in the set.
  bool Intersects(uint32_t lo, uint32_t hi) const;
};

struct Symbol {
  enum class Kind : uint8_t { kChars, kRule };
  Kind kind = Kind::kChars;
  uint32_t index = 0;  // into ParsedGrammar::classes or ParsedGrammar::rules
  bool operator==(const Symbol&) const = default;
};

struct ParsedRule {
  std::string name;  // generated rules: "<user rule>/<n>", which no identifier can spell
  int line = 0;      // where the rule (or the group that generated it) starts, 1-based
  int column = 0;
  bool generated = false;
  std::vector<std::vector<Symbol>> alternatives;  // an empty alternative matches ""
};

struct ParsedGrammar {
  std::vector<ParsedRule> rules;
  std::vector<CharClass> classes;  // deduplicated
  uint32_t root = 0;               // the rule named "root"
};

// Parses GBNF text. Errors are kInvalidArgument ("line L, column C: ...") for bad syntax, bad
// escapes, bad repetition bounds, undefined rules, a rule defined twice and a missing root, and
// kResourceExhausted for input beyond `limits`.
Result<ParsedGrammar> ParseGbnf(std::string_view text, const GbnfLimits& limits = {});

}  // namespace gannet::grammar
