#include "grammar/json_schema_number.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gannet::grammar {
namespace {

constexpr int64_t kMax = kMaxJsonMagnitude;

std::string Paren(const std::string& e) {
  return e.find('|') == std::string::npos ? e : "( " + e + " )";
}

std::string Lit(char digit) { return std::string("\"") + digit + "\""; }

std::string DigitClass(char lo, char hi) {
  if (lo == hi) return Lit(lo);
  return std::string("[") + lo + "-" + hi + "]";
}

// The decimal strings from x to y, both of the same length.
std::string SameLength(const std::string& x, const std::string& y) {
  size_t n = x.size();
  if (n == 1) return DigitClass(x[0], y[0]);
  if (x[0] == y[0]) return Lit(x[0]) + " " + Paren(SameLength(x.substr(1), y.substr(1)));
  bool x_rest_zero = x.find_first_not_of('0', 1) == std::string::npos;
  bool y_rest_nine = y.find_first_not_of('9', 1) == std::string::npos;
  std::string any = n - 1 == 1 ? "[0-9]" : "[0-9]{" + std::to_string(n - 1) + "}";
  std::vector<std::string> alts;
  if (!x_rest_zero) {
    alts.push_back(Lit(x[0]) + " " + Paren(SameLength(x.substr(1), std::string(n - 1, '9'))));
  }
  char lo = static_cast<char>(x[0] + (x_rest_zero ? 0 : 1));
  char hi = static_cast<char>(y[0] - (y_rest_nine ? 0 : 1));
  if (lo <= hi) alts.push_back(DigitClass(lo, hi) + " " + any);
  if (!y_rest_nine) {
    alts.push_back(Lit(y[0]) + " " + Paren(SameLength(std::string(n - 1, '0'), y.substr(1))));
  }
  std::string out;
  for (const std::string& a : alts) out += (out.empty() ? "" : " | ") + a;
  return out;
}

// The decimal strings of [a, b], 0 <= a <= b.
std::string NonNegativeRange(int64_t a, int64_t b) {
  std::string out;
  int64_t low_of_length = 0, high_of_length = 9;
  for (size_t len = 1; len <= 16 && low_of_length <= b; ++len) {
    int64_t x = std::max(a, low_of_length), y = std::min(b, high_of_length);
    if (x <= y) {
      out += (out.empty() ? "" : " | ") + Paren(SameLength(std::to_string(x), std::to_string(y)));
    }
    low_of_length = high_of_length + 1;
    high_of_length = high_of_length * 10 + 9;
  }
  return out;
}

// The integers of [lo, hi] (lo <= hi, magnitudes at most kMax).
std::string IntegerRange(int64_t lo, int64_t hi) {
  std::vector<std::string> alts;
  if (lo < 0) alts.push_back("\"-\" " + Paren(NonNegativeRange(std::max<int64_t>(1, -hi), -lo)));
  if (hi >= 0) alts.push_back(NonNegativeRange(std::max<int64_t>(0, lo), hi));
  std::string out;
  for (const std::string& a : alts) out += (out.empty() ? "" : " | ") + a;
  return out;
}

int64_t Clamp(double v) {
  double c = std::clamp(v, -static_cast<double>(kMax) - 2, static_cast<double>(kMax) + 2);
  return static_cast<int64_t>(c);
}

// The integers of the bounds as [*lo, *hi] (empty when *lo > *hi).
void IntegerBounds(const NumberBounds& b, int64_t* lo, int64_t* hi) {
  *lo = -kMax;
  *hi = kMax;
  if (b.lower) {
    *lo = std::max(
        *lo, b.lower_exclusive ? Clamp(std::floor(*b.lower)) + 1 : Clamp(std::ceil(*b.lower)));
  }
  if (b.upper) {
    *hi = std::min(
        *hi, b.upper_exclusive ? Clamp(std::ceil(*b.upper)) - 1 : Clamp(std::floor(*b.upper)));
  }
}

}  // namespace

void NumberBounds::Add(std::string_view keyword, double v) {
  if (keyword == "minimum" && (!lower || v > *lower)) {
    lower = v, lower_exclusive = false;
  } else if (keyword == "exclusiveMinimum" && (!lower || v >= *lower)) {
    lower = v, lower_exclusive = true;
  } else if (keyword == "maximum" && (!upper || v < *upper)) {
    upper = v, upper_exclusive = false;
  } else if (keyword == "exclusiveMaximum" && (!upper || v <= *upper)) {
    upper = v, upper_exclusive = true;
  }
}

Result<std::string> IntegerInBounds(const NumberBounds& b) {
  int64_t lo, hi;
  IntegerBounds(b, &lo, &hi);
  if (lo > hi) {
    return Status::InvalidArgument(
        "no integer of at most 15 digits is within 'minimum'/'maximum' (or their exclusive forms)");
  }
  return IntegerRange(lo, hi);
}

Result<std::string> NumberInBounds(const NumberBounds& b) {
  std::vector<std::string> alts;
  int64_t lo, hi;
  IntegerBounds(b, &lo, &hi);
  if (lo <= hi) alts.push_back(IntegerRange(lo, hi));
  // I.F with F in (0, 1): I in [ceil(lower), floor(upper) - 1], whether the bounds are
  // exclusive or not (the value is strictly between I and I + 1).
  int64_t pos_lo = b.lower ? std::max<int64_t>(0, Clamp(std::ceil(*b.lower))) : 0;
  int64_t pos_hi = b.upper ? std::min(kMax, Clamp(std::floor(*b.upper)) - 1) : kMax;
  if (pos_lo <= pos_hi) alts.push_back(Paren(NonNegativeRange(pos_lo, pos_hi)) + " frac");
  // -(I.F) is in (-(I + 1), -I): I in [ceil(-upper), floor(-lower) - 1].
  int64_t neg_lo = b.upper ? std::max<int64_t>(0, Clamp(std::ceil(-*b.upper))) : 0;
  int64_t neg_hi = b.lower ? std::min(kMax, Clamp(std::floor(-*b.lower)) - 1) : kMax;
  if (neg_lo <= neg_hi)
    alts.push_back("\"-\" " + Paren(NonNegativeRange(neg_lo, neg_hi)) + " frac");
  if (alts.empty()) {
    return Status::InvalidArgument(
        "no number is within 'minimum'/'maximum' (or their exclusive forms)");
  }
  std::string out;
  for (const std::string& a : alts) out += (out.empty() ? "" : " | ") + a;
  return out;
}

}  // namespace gannet::grammar
