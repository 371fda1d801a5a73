#include "grammar/json_schema_regex.h"

#include <algorithm>
#include <cstdio>

#include "grammar/strict_utf8.h"

namespace gannet::grammar {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;
constexpr uint32_t kMaxCodepoint = 0x10FFFF;
constexpr uint64_t kUnbounded = PatternGbnf::kUnbounded;

uint64_t AddLen(uint64_t a, uint64_t b) {
  return (a == kUnbounded || b == kUnbounded || a + b < a) ? kUnbounded : a + b;
}
uint64_t MulLen(uint64_t a, uint64_t n) {  // n == kUnbounded: unbounded repetitions
  if (a == 0 || n == 0) return 0;
  if (a == kUnbounded || n == kUnbounded || a > kUnbounded / n) return kUnbounded;
  return a * n;
}

// Sorts and merges ranges that overlap or touch.
Ranges Normalize(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (const auto& [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.push_back({lo, hi});
    }
  }
  return out;
}

Ranges Complement(const Ranges& normalized) {
  Ranges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : normalized) {
    if (lo > next) out.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= kMaxCodepoint) out.push_back({next, kMaxCodepoint});
  return out;
}

// The part of `r` (normalized) inside [lo, hi].
Ranges Intersect(const Ranges& r, uint32_t lo, uint32_t hi) {
  Ranges out;
  for (const auto& [a, b] : r) {
    uint32_t x = std::max(a, lo), y = std::min(b, hi);
    if (x <= y) out.push_back({x, y});
  }
  return out;
}

bool Contains(const Ranges& r, uint32_t cp) {
  for (const auto& [a, b] : r) {
    if (cp >= a && cp <= b) return true;
  }
  return false;
}

std::string EscapeCodepoint(uint32_t cp) {
  if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
    return std::string(1, static_cast<char>(cp));
  }
  char buf[16];
  if (cp < 0x100) {
    std::snprintf(buf, sizeof(buf), "\\x%02X", cp);
  } else if (cp < 0x10000) {
    std::snprintf(buf, sizeof(buf), "\\u%04X", cp);
  } else {
    std::snprintf(buf, sizeof(buf), "\\U%08X", cp);
  }
  return buf;
}

const char* ShortEscape(uint32_t c) {
  switch (c) {
    case 0x08:
      return "\\b";
    case 0x09:
      return "\\t";
    case 0x0A:
      return "\\n";
    case 0x0C:
      return "\\f";
    case 0x0D:
      return "\\r";
    default:
      return nullptr;
  }
}

// The alternatives that write control character `c` inside a JSON string.
void ControlEscapes(uint32_t c, std::vector<std::string>* alts) {
  if (const char* s = ShortEscape(c)) alts->push_back(GbnfLiteral(s));
  const char* hex = "0123456789abcdef";
  char low = hex[c & 15];
  if (low >= 'a') {  // either case of the hex digit
    alts->push_back(GbnfLiteral(std::string("\\u00") + hex[c >> 4]) + " [" + low +
                    static_cast<char>(low - 'a' + 'A') + "]");
  } else {
    alts->push_back(GbnfLiteral(std::string("\\u00") + hex[c >> 4] + low));
  }
}

// `r` (normalized) without code point `cp`.
Ranges Remove(const Ranges& r, uint32_t cp) {
  Ranges out;
  for (const auto& [lo, hi] : r) {
    if (cp < lo || cp > hi) {
      out.push_back({lo, hi});
      continue;
    }
    if (lo < cp) out.push_back({lo, cp - 1});
    if (hi > cp) out.push_back({cp + 1, hi});
  }
  return out;
}

class RegexParser {
 public:
  RegexParser(std::string_view pattern, std::string_view any_char, const RegexLimits& limits)
      : p_(pattern), any_char_(any_char), limits_(limits) {}

  Result<PatternGbnf> Parse() {
    if (p_.size() > limits_.max_pattern_bytes) {
      return Status::InvalidArgument("the pattern is longer than " +
                                     std::to_string(limits_.max_pattern_bytes) + " bytes");
    }
    bool anchored_start = !p_.empty() && p_[0] == '^';
    pos_ = anchored_start ? 1 : 0;
    end_ = p_.size();
    bool anchored_end = false;
    if (end_ > pos_ && p_[end_ - 1] == '$') {
      size_t slashes = 0;
      while (end_ - 1 - slashes > pos_ && p_[end_ - 2 - slashes] == '\\') ++slashes;
      if (slashes % 2 == 0) anchored_end = true, --end_;
    }
    Piece body;
    GANNET_ASSIGN_OR_RETURN(body, ParseAlt(0));
    if (pos_ < end_) return Error("unbalanced ')'", pos_);
    PatternGbnf out;
    std::string any = std::string(any_char_) + "*";
    out.expr = anchored_start ? body.expr : Join(any, body.expr);
    if (!anchored_end) out.expr = Join(out.expr, any);
    out.min_length = body.min;
    out.max_length = (anchored_start && anchored_end) ? body.max : kUnbounded;
    out.repetition_cost = cost_;
    return out;
  }

 private:
  struct Piece {
    std::string expr;  // a GBNF sequence; "" matches the empty string
    uint64_t min = 0, max = 0;
  };

  static std::string Join(const std::string& a, const std::string& b) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    return a + " " + b;
  }

  Status Error(const std::string& what, size_t at) const {
    return Status::InvalidArgument(what + " at offset " + std::to_string(at));
  }

  bool AtEnd() const { return pos_ >= end_; }
  char Peek() const { return p_[pos_]; }

  Result<Piece> ParseAlt(size_t depth) {
    std::vector<Piece> alts;
    while (true) {
      Piece seq;
      GANNET_ASSIGN_OR_RETURN(seq, ParseSeq(depth));
      alts.push_back(std::move(seq));
      if (AtEnd() || Peek() != '|') break;
      ++pos_;
    }
    if (alts.size() == 1) return std::move(alts[0]);
    Piece out{.expr = "(", .min = kUnbounded, .max = 0};
    for (size_t i = 0; i < alts.size(); ++i) {
      out.expr += (i ? " | " : " ") + alts[i].expr;
      out.min = std::min(out.min, alts[i].min);
      out.max = std::max(out.max, alts[i].max);
    }
    out.expr += " )";
    return out;
  }

  Result<Piece> ParseSeq(size_t depth) {
    Piece out;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      Piece atom;
      GANNET_ASSIGN_OR_RETURN(atom, ParseAtom(depth));
      GANNET_RETURN_IF_ERROR(ParseQuantifier(&atom));
      out.expr = Join(out.expr, atom.expr);
      out.min = AddLen(out.min, atom.min);
      out.max = AddLen(out.max, atom.max);
    }
    return out;
  }

  // Reads {m}, {m,}, {m,n} or {,n} at pos_ into *lo, *hi; false (pos_ unchanged) when the text
  // there is not one (Python then reads '{' as a literal).
  bool ReadBraces(uint64_t* lo, uint64_t* hi) {
    size_t i = pos_ + 1;
    auto number = [&](uint64_t* v) {
      size_t start = i;
      *v = 0;
      while (i < end_ && p_[i] >= '0' && p_[i] <= '9' && i - start < 9)
        *v = *v * 10 + (p_[i++] - '0');
      return i > start;
    };
    bool has_lo = number(lo);
    if (!has_lo) *lo = 0;
    if (i < end_ && p_[i] == '}') {
      if (!has_lo) return false;
      *hi = *lo;
    } else if (i < end_ && p_[i] == ',') {
      ++i;
      if (!number(hi)) *hi = kUnbounded;
      if (i >= end_ || p_[i] != '}') return false;
    } else {
      return false;
    }
    pos_ = i + 1;
    return true;
  }

  Status ParseQuantifier(Piece* atom) {
    if (AtEnd()) return Status::Ok();
    size_t at = pos_;
    uint64_t lo = 0, hi = 0;
    char c = Peek();
    if (c == '*') {
      lo = 0, hi = kUnbounded, ++pos_;
    } else if (c == '+') {
      lo = 1, hi = kUnbounded, ++pos_;
    } else if (c == '?') {
      lo = 0, hi = 1, ++pos_;
    } else if (c != '{' || !ReadBraces(&lo, &hi)) {
      return Status::Ok();
    }
    if (hi != kUnbounded && lo > hi) return Error("bad repetition {m,n} with m > n", at);
    uint64_t biggest = hi == kUnbounded ? lo : hi;
    if (biggest > limits_.max_repetition) {
      return Error("a repetition bound over " + std::to_string(limits_.max_repetition), at);
    }
    if (!AtEnd() && Peek() == '?') ++pos_;  // lazy: the same language
    if (!AtEnd() && (Peek() == '*' || Peek() == '+' || Peek() == '?' || Peek() == '{')) {
      uint64_t l2, h2;
      size_t save = pos_;
      if (Peek() != '{' || ReadBraces(&l2, &h2)) {
        return Error("a possessive or repeated quantifier is not supported", save);
      }
    }
    cost_ += hi == kUnbounded ? lo + 1 : hi;
    std::string op;
    if (lo == 0 && hi == kUnbounded) {
      op = "*";
    } else if (lo == 1 && hi == kUnbounded) {
      op = "+";
    } else if (lo == 0 && hi == 1) {
      op = "?";
    } else if (hi == kUnbounded) {
      op = "{" + std::to_string(lo) + ",}";
    } else {
      op = "{" + std::to_string(lo) + "," + std::to_string(hi) + "}";
    }
    if (atom->expr.empty() || hi == 0) {
      *atom = Piece{};
      return Status::Ok();
    }
    atom->expr = "( " + atom->expr + " )" + op;
    atom->max = MulLen(atom->max, hi);
    atom->min = MulLen(atom->min, lo);
    return Status::Ok();
  }

  Result<uint32_t> ReadCodepoint() {
    uint32_t cp;
    size_t n = DecodeStrict(p_, pos_, &cp);
    if (n == 0) return Error("invalid UTF-8", pos_);
    pos_ += n;
    return cp;
  }

  Result<Piece> ParseAtom(size_t depth) {
    size_t at = pos_;
    char c = Peek();
    if (c == '(') return ParseGroup(depth);
    Ranges set;
    if (c == '[') {
      GANNET_ASSIGN_OR_RETURN(set, ParseClass());
    } else if (c == '.') {
      ++pos_;
      set = {{0, '\n' - 1}, {'\n' + 1, kMaxCodepoint}};
    } else if (c == '\\') {
      GANNET_ASSIGN_OR_RETURN(set, ParseEscape(false, false));
    } else if (c == '*' || c == '+' || c == '?') {
      return Error("nothing to repeat", at);
    } else if (c == '^' || c == '$') {
      return Error(std::string("'") + c + "' is supported only at the start ('^') or end ('$')",
                   at);
    } else {
      uint64_t lo, hi;
      if (c == '{' && ReadBraces(&lo, &hi)) return Error("nothing to repeat", at);
      uint32_t cp;
      GANNET_ASSIGN_OR_RETURN(cp, ReadCodepoint());
      set = {{cp, cp}};
    }
    return EmitSet(Normalize(std::move(set)), at);
  }

  Result<Piece> ParseGroup(size_t depth) {
    size_t at = pos_;
    if (depth + 1 > limits_.max_nesting) {
      return Error("groups nested deeper than " + std::to_string(limits_.max_nesting), at);
    }
    ++pos_;
    if (!AtEnd() && Peek() == '?') {
      if (pos_ + 1 < end_ && p_[pos_ + 1] == ':') {
        pos_ += 2;
      } else if (pos_ + 2 < end_ && p_[pos_ + 1] == 'P' && p_[pos_ + 2] == '<') {
        size_t close = p_.find('>', pos_);
        if (close == std::string_view::npos || close >= end_) return Error("bad group name", at);
        pos_ = close + 1;
      } else {
        return Error("'(?' (look-around, flags, ...) is not supported", at);
      }
    }
    Piece inner;
    GANNET_ASSIGN_OR_RETURN(inner, ParseAlt(depth + 1));
    if (AtEnd() || Peek() != ')') return Error("missing ')'", at);
    ++pos_;
    if (!inner.expr.empty()) inner.expr = "( " + inner.expr + " )";
    return inner;
  }

  Result<Ranges> ParseClass() {
    size_t at = pos_;
    ++pos_;
    bool negated = !AtEnd() && Peek() == '^';
    if (negated) ++pos_;
    Ranges set;
    bool first = true;
    while (true) {
      if (AtEnd()) return Error("missing ']'", at);
      if (Peek() == ']' && !first) break;
      first = false;
      Ranges item;
      bool single = true;
      if (Peek() == '\\') {
        GANNET_ASSIGN_OR_RETURN(item, ParseEscape(true, negated));
        single = item.size() == 1 && item[0].first == item[0].second;
      } else {
        uint32_t cp;
        GANNET_ASSIGN_OR_RETURN(cp, ReadCodepoint());
        item = {{cp, cp}};
      }
      if (single && pos_ + 1 < end_ && Peek() == '-' && p_[pos_ + 1] != ']') {
        size_t range_at = pos_;
        ++pos_;
        Ranges hi;
        if (Peek() == '\\') {
          GANNET_ASSIGN_OR_RETURN(hi, ParseEscape(true, negated));
        } else {
          uint32_t cp;
          GANNET_ASSIGN_OR_RETURN(cp, ReadCodepoint());
          hi = {{cp, cp}};
        }
        if (hi.size() != 1 || hi[0].first != hi[0].second || hi[0].first < item[0].first) {
          return Error("bad character range", range_at);
        }
        item = {{item[0].first, hi[0].first}};
      }
      set.insert(set.end(), item.begin(), item.end());
    }
    ++pos_;  // ]
    set = Normalize(std::move(set));
    return negated ? Complement(set) : set;
  }

  Result<uint32_t> ReadHex(int digits, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      if (AtEnd()) return Error("bad escape", at);
      char h = Peek();
      int d = (h >= '0' && h <= '9')   ? h - '0'
              : (h >= 'a' && h <= 'f') ? h - 'a' + 10
              : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                       : -1;
      if (d < 0) return Error("bad escape", at);
      v = v * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    if (v > kMaxCodepoint) return Error("bad escape", at);
    return v;
  }

  Result<Ranges> ParseEscape(bool in_class, bool negated_class) {
    size_t at = pos_;
    ++pos_;  // backslash
    if (AtEnd()) return Error("a trailing '\\'", at);
    char e = Peek();
    if (e == 'd' || e == 'w' || e == 's') {
      if (negated_class) {
        return Error(std::string("'\\") + e + "' inside a negated class is not supported", at);
      }
      ++pos_;
      if (e == 'd') return Ranges{{'0', '9'}};
      if (e == 'w') return Normalize({{'0', '9'}, {'A', 'Z'}, {'a', 'z'}, {'_', '_'}});
      return Ranges{{'\t', '\r'}, {' ', ' '}};
    }
    uint32_t cp;
    switch (e) {
      case 'n':
        cp = '\n';
        break;
      case 't':
        cp = '\t';
        break;
      case 'r':
        cp = '\r';
        break;
      case 'f':
        cp = '\f';
        break;
      case 'v':
        cp = '\v';
        break;
      case 'b':
        if (!in_class) return Error("'\\b' (word boundary) is not supported", at);
        cp = '\b';
        break;
      case 'x':
      case 'u':
      case 'U': {
        ++pos_;
        GANNET_ASSIGN_OR_RETURN(cp, ReadHex(e == 'x' ? 2 : e == 'u' ? 4 : 8, at));
        return Ranges{{cp, cp}};
      }
      default:
        if ((e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
          return Error(std::string("'\\") + e + "' is not supported", at);
        }
        GANNET_ASSIGN_OR_RETURN(cp, ReadCodepoint());
        return Ranges{{cp, cp}};
    }
    ++pos_;
    return Ranges{{cp, cp}};
  }

  // The JSON encodings of one character of `set` (normalized).
  Result<Piece> EmitSet(const Ranges& set_with_surrogates, size_t at) {
    Ranges set;
    for (const auto& [lo, hi] : set_with_surrogates) {
      if (hi < 0xD800 || lo > 0xDFFF) {
        set.push_back({lo, hi});
        continue;
      }
      if (lo < 0xD800) set.push_back({lo, 0xD7FF});
      if (hi > 0xDFFF) set.push_back({0xE000, hi});
    }
    if (set.empty()) return Error("a class that matches no character", at);
    std::vector<std::string> alts;
    Ranges raw = Remove(Remove(Intersect(set, 0x20, kMaxCodepoint), '"'), '\\');
    if (!raw.empty()) {
      alts.push_back(raw.size() == 1 && raw[0].first == raw[0].second && raw[0].first < 0x80
                         ? GbnfLiteral(std::string(1, static_cast<char>(raw[0].first)))
                         : GbnfClass(raw, false));
    }
    if (Contains(set, '"')) alts.push_back(GbnfLiteral("\\\""));
    if (Contains(set, '\\')) alts.push_back(GbnfLiteral("\\\\"));
    if (Contains(set, '/')) alts.push_back(GbnfLiteral("\\/"));
    Ranges controls = Intersect(set, 0, 0x1F);
    if (controls.size() == 1 && controls[0] == std::pair<uint32_t, uint32_t>{0, 0x1F}) {
      for (uint32_t c : {8, 9, 10, 12, 13}) alts.push_back(GbnfLiteral(ShortEscape(c)));
      alts.push_back(GbnfLiteral("\\u00") + " [01] [0-9a-fA-F]");
    } else {
      for (const auto& [lo, hi] : controls) {
        for (uint32_t c = lo; c <= hi; ++c) ControlEscapes(c, &alts);
      }
    }
    Piece out{.min = 1, .max = 1};
    if (alts.size() == 1) {
      out.expr = alts[0];
    } else {
      out.expr = "(";
      for (size_t i = 0; i < alts.size(); ++i) out.expr += (i ? " | " : " ") + alts[i];
      out.expr += " )";
    }
    return out;
  }

  std::string_view p_;
  std::string_view any_char_;
  RegexLimits limits_;
  size_t pos_ = 0;
  size_t end_ = 0;
  uint64_t cost_ = 0;
};

}  // namespace

std::string GbnfClass(const std::vector<std::pair<uint32_t, uint32_t>>& ranges, bool negated) {
  std::string out = negated ? "[^" : "[";
  for (const auto& [lo, hi] : ranges) {
    out += EscapeCodepoint(lo);
    if (hi > lo) {
      out += '-';
      out += EscapeCodepoint(hi);
    }
  }
  return out + "]";
}

std::string GbnfLiteral(std::string_view utf8) {
  std::string out = "\"";
  for (char ch : utf8) {
    auto b = static_cast<uint8_t>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (b < 0x20 || b == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", b);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::optional<std::string> FormatPattern(std::string_view format) {
  const std::string year = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])";
  // February stops at 28: the 29th exists only in leap years.
  const std::string month_day =
      "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|"
      "02-(?:0[1-9]|1[0-9]|2[0-8]))";
  const std::string date = year + "-" + month_day;
  const std::string time =
      "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
      "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
  if (format == "date") return "^" + date + "$";
  if (format == "time") return "^" + time + "$";
  if (format == "date-time") return "^" + date + "T" + time + "$";
  if (format == "uuid") {
    return "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
  }
  if (format == "ipv4") {
    const std::string octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    return "^" + octet + "\\." + octet + "\\." + octet + "\\." + octet + "$";
  }
  if (format == "email") {
    return "^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\\.[A-Za-z0-9-]{1,63}){1,4}$";
  }
  return std::nullopt;
}

Result<PatternGbnf> PatternToGbnf(std::string_view pattern, std::string_view any_char,
                                  const RegexLimits& limits) {
  return RegexParser(pattern, any_char, limits).Parse();
}

}  // namespace gannet::grammar
