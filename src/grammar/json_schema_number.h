// Numbers within bounds as GBNF over their decimal digits: JSON Schema's minimum, maximum,
// exclusiveMinimum and exclusiveMaximum, enforced exactly for integers and soundly for numbers.
// Internal to grammar/ (json_schema.cc).
//
// Integers: the decimal strings (no leading zeros, no "-0") of every integer in the bounds, built
// digit position by digit position (the classic range-to-regex split: for each length, the common
// prefix, then the lower edge, the full middle digits and the upper edge), O(digits^2) text.
// Numbers: those integers, plus I.F where the fraction F has a non-zero last digit and the
// integer part I is such that every value in (I, I + 1) (or (-(I + 1), -I) for a negative) is in
// the bounds; no exponent. Magnitudes stay below 10^15 (15 digits, exact in a double).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace gannet::grammar {

inline constexpr int64_t kMaxJsonMagnitude = 999'999'999'999'999;  // 15 digits

struct NumberBounds {
  std::optional<double> lower, upper;
  bool lower_exclusive = false, upper_exclusive = false;
  // Tightens by one keyword ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum").
  void Add(std::string_view keyword, double v);
};

// A GBNF expression of the integers within `b`; an error naming the keywords when there is none.
Result<std::string> IntegerInBounds(const NumberBounds& b);
// A GBNF expression of (a sound subset of) the numbers within `b`.
Result<std::string> NumberInBounds(const NumberBounds& b);

}  // namespace gannet::grammar
