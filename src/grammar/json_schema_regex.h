// The regular-expression subset of JSON Schema's `pattern` (and of the built-in `format`s), turned
// into GBNF for the inside of a JSON string. Internal to grammar/ (json_schema.cc).
//
// The language produced is the JSON *encoding* of the strings the pattern matches: a character the
// pattern allows is written raw where JSON allows that (not `"`, `\` or a control character), and
// `"`, `\` and control characters as their escapes (`\"`, `\\`, `\n`... or `\u00XX`; `/` also as
// `\/`). Every character unit is exactly one code point, so lengths are exact.
//
// Subset (Python `re` semantics, which JSON Schema validators in Python use): literal characters,
// `.` (anything but a newline), classes `[a-z_]` and `[^...]`, escapes `\d \w \s` (ASCII only:
// a subset of what Python matches, so sound) outside classes and inside positive classes,
// `\n \t \r \f \v \xHH \uHHHH` and escaped punctuation, groups `( )` `(?: )` `(?P<name> )`,
// alternation `|`, quantifiers `? * + {m} {m,} {m,n} {,n}` (lazy `?` suffixes too: the language is
// the same), `^` only at the start and `$` only at the end. A pattern without `^` (or `$`) matches
// anywhere, so any JSON string characters may come before (or after) it, as `re.search` allows.
// Anything else (`\b`, back references, look-arounds, flags, `\D \W \S`, possessive quantifiers)
// is an error naming the construct.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace gannet::grammar {

struct RegexLimits {
  size_t max_pattern_bytes = 4096;
  uint32_t max_repetition = 1024;  // the largest m or n of {m,n}
  size_t max_nesting = 32;         // depth of groups
};

struct PatternGbnf {
  static constexpr uint64_t kUnbounded = UINT64_MAX;
  std::string expr;              // a GBNF sequence for the string's content (between the quotes)
  uint64_t min_length = 0;       // code points of the shortest match
  uint64_t max_length = 0;       // of the longest; kUnbounded when unbounded
  uint64_t repetition_cost = 0;  // the rules the bounded repetitions will lower to
};

// `any_char` names the GBNF rule of one JSON string character (any character or escape); it fills
// the unanchored ends. Errors are kInvalidArgument "... at offset N" (a byte offset in `pattern`).
Result<PatternGbnf> PatternToGbnf(std::string_view pattern, std::string_view any_char,
                                  const RegexLimits& limits = {});

// JSON Schema's `format` as a pattern of the subset above: date, time, date-time (RFC 3339, as
// Python's jsonschema checks them; February stops at the 28th), uuid, ipv4 (no leading zeros),
// email; nullopt for any other.
std::optional<std::string> FormatPattern(std::string_view format);

// The GBNF class text `[...]` (or `[^...]` when negated) of the code-point ranges, each range
// [lo, hi] given as a pair, every non-alphanumeric code point escaped.
std::string GbnfClass(const std::vector<std::pair<uint32_t, uint32_t>>& ranges, bool negated);
// The GBNF literal "..." of UTF-8 text.
std::string GbnfLiteral(std::string_view utf8);

}  // namespace gannet::grammar
