#include "grammar/gbnf.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

namespace gannet::grammar {
namespace {

constexpr uint32_t kMaxCodepoint = 0x10FFFF;

bool IsIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void Normalize(std::vector<CharRange>* ranges) {
  std::sort(ranges->begin(), ranges->end(),
            [](const CharRange& a, const CharRange& b) { return a.lo < b.lo; });
  std::vector<CharRange> merged;
  for (const CharRange& r : *ranges) {
    if (!merged.empty() && r.lo <= merged.back().hi + 1) {
      merged.back().hi = std::max(merged.back().hi, r.hi);
    } else {
      merged.push_back(r);
    }
  }
  *ranges = std::move(merged);
}

enum class Tok { kIdent, kDefine, kString, kClass, kDot, kLParen, kRParen, kBar, kRepeat, kEnd };

struct Token {
  Tok kind = Tok::kEnd;
  int line = 1;
  int column = 1;
  std::string ident;            // kIdent
  std::vector<uint32_t> chars;  // kString: the code points
  CharClass cls;                // kClass
  uint32_t min = 0, max = 0;    // kRepeat; max == kUnbounded for * + {m,}
  static constexpr uint32_t kUnbounded = UINT32_MAX;
};

// Splits the text into tokens; tracks line and column (columns count code points).
class Lexer {
 public:
  Lexer(std::string_view text, const GbnfLimits& limits) : text_(text), limits_(limits) {}

  Status Next(Token* tok) {
    SkipSpace();
    *tok = Token();
    tok->line = line_;
    tok->column = column_;
    if (pos_ >= text_.size()) return Status::Ok();
    char c = text_[pos_];
    if (IsIdentChar(c)) {
      size_t start = pos_;
      while (pos_ < text_.size() && IsIdentChar(text_[pos_])) Advance();
      tok->kind = Tok::kIdent;
      tok->ident = std::string(text_.substr(start, pos_ - start));
      return Status::Ok();
    }
    switch (c) {
      case ':':
        if (text_.substr(pos_, 3) != "::=") return Error("expected '::='");
        Advance(), Advance(), Advance();
        tok->kind = Tok::kDefine;
        return Status::Ok();
      case '(':
        Advance();
        tok->kind = Tok::kLParen;
        return Status::Ok();
      case ')':
        Advance();
        tok->kind = Tok::kRParen;
        return Status::Ok();
      case '|':
        Advance();
        tok->kind = Tok::kBar;
        return Status::Ok();
      case '.':
        Advance();
        tok->kind = Tok::kDot;
        tok->cls.negated = true;
        return Status::Ok();
      case '*':
        Advance();
        tok->kind = Tok::kRepeat;
        tok->min = 0;
        tok->max = Token::kUnbounded;
        return Status::Ok();
      case '+':
        Advance();
        tok->kind = Tok::kRepeat;
        tok->min = 1;
        tok->max = Token::kUnbounded;
        return Status::Ok();
      case '?':
        Advance();
        tok->kind = Tok::kRepeat;
        tok->min = 0;
        tok->max = 1;
        return Status::Ok();
      case '{':
        return LexBraces(tok);
      case '"':
        return LexString(tok);
      case '[':
        return LexClass(tok);
      case '<':
        return LexTokenRef(tok);
      default:
        return Error(std::string("unexpected character '") + c + "'");
    }
  }

  // True when the next token is `::=` (after whitespace and comments), without consuming it.
  bool DefineFollows() {
    size_t p = pos_;
    int l = line_, col = column_;
    SkipSpace();
    bool result = text_.substr(pos_, 3) == "::=";
    pos_ = p, line_ = l, column_ = col;
    return result;
  }

  Status Error(const std::string& what) const { return ErrorAt(line_, column_, what); }
  static Status ErrorAt(int line, int column, const std::string& what) {
    return Status::InvalidArgument("grammar: line " + std::to_string(line) + ", column " +
                                   std::to_string(column) + ": " + what);
  }

 private:
  void Advance() {
    unsigned char c = static_cast<unsigned char>(text_[pos_++]);
    if (c == '\n') {
      ++line_;
      column_ = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++column_;
    }
  }

  void SkipSpace() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        Advance();
      } else if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n') Advance();
      } else {
        break;
      }
    }
  }

  // Decodes one strict UTF-8 code point of the grammar text.
  Status ReadUtf8(uint32_t* cp) {
    auto b0 = static_cast<unsigned char>(text_[pos_]);
    int n = b0 < 0x80                    ? 1
            : (b0 >= 0xC2 && b0 <= 0xDF) ? 2
            : (b0 >= 0xE0 && b0 <= 0xEF) ? 3
            : (b0 >= 0xF0 && b0 <= 0xF4) ? 4
                                         : 0;
    if (n == 0 || pos_ + n > text_.size()) return Error("invalid UTF-8 in the grammar text");
    uint32_t v = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int i = 1; i < n; ++i) {
      auto b = static_cast<unsigned char>(text_[pos_ + i]);
      if ((b & 0xC0) != 0x80) return Error("invalid UTF-8 in the grammar text");
      v = (v << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < kMinForLength[n] || v > kMaxCodepoint || (v >= 0xD800 && v <= 0xDFFF)) {
      return Error("invalid UTF-8 in the grammar text");
    }
    for (int i = 0; i < n; ++i) Advance();
    *cp = v;
    return Status::Ok();
  }

  // One character of a string literal or class, escapes decoded. `in_class` admits \- \^ and \].
  Status ReadChar(uint32_t* cp) {
    if (pos_ >= text_.size()) return Error("unexpected end of the grammar inside a literal");
    if (text_[pos_] != '\\') return ReadUtf8(cp);
    int line = line_, column = column_;
    Advance();
    if (pos_ >= text_.size()) return Error("unexpected end of the grammar after '\\'");
    char e = text_[pos_];
    int digits = 0;
    switch (e) {
      case 'n':
        *cp = '\n';
        break;
      case 't':
        *cp = '\t';
        break;
      case 'r':
        *cp = '\r';
        break;
      case '\\':
      case '"':
      case '\'':
      case '[':
      case ']':
      case '-':
      case '^':
      case '/':
        *cp = static_cast<unsigned char>(e);
        break;
      case 'x':
        digits = 2;
        break;
      case 'u':
        digits = 4;
        break;
      case 'U':
        digits = 8;
        break;
      default:
        return ErrorAt(line, column, std::string("bad escape '\\") + e + "'");
    }
    Advance();
    if (digits == 0) return Status::Ok();
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      int h = pos_ < text_.size() ? HexValue(text_[pos_]) : -1;
      if (h < 0) {
        return ErrorAt(line, column,
                       "bad escape: '\\" + std::string(1, e) + "' needs " + std::to_string(digits) +
                           " hex digits");
      }
      v = (v << 4) | static_cast<uint32_t>(h);
      Advance();
    }
    if (v > kMaxCodepoint || (v >= 0xD800 && v <= 0xDFFF)) {
      return ErrorAt(line, column, "bad escape: not a Unicode scalar value");
    }
    *cp = v;
    return Status::Ok();
  }

  Status LexString(Token* tok) {
    Advance();  // "
    tok->kind = Tok::kString;
    while (true) {
      if (pos_ >= text_.size()) return ErrorAt(tok->line, tok->column, "unterminated string");
      if (text_[pos_] == '"') {
        Advance();
        return Status::Ok();
      }
      uint32_t cp;
      GANNET_RETURN_IF_ERROR(ReadChar(&cp));
      tok->chars.push_back(cp);
    }
  }

  Status LexClass(Token* tok) {
    Advance();  // [
    tok->kind = Tok::kClass;
    if (pos_ < text_.size() && text_[pos_] == '^') {
      tok->cls.negated = true;
      Advance();
    }
    while (true) {
      if (pos_ >= text_.size()) {
        return ErrorAt(tok->line, tok->column, "unterminated character class");
      }
      if (text_[pos_] == ']') {
        Advance();
        break;
      }
      int line = line_, column = column_;
      uint32_t lo, hi;
      GANNET_RETURN_IF_ERROR(ReadChar(&lo));
      hi = lo;
      if (pos_ + 1 < text_.size() && text_[pos_] == '-' && text_[pos_ + 1] != ']') {
        Advance();
        GANNET_RETURN_IF_ERROR(ReadChar(&hi));
        if (hi < lo) return ErrorAt(line, column, "character range is reversed");
      }
      tok->cls.ranges.push_back({lo, hi});
    }
    Normalize(&tok->cls.ranges);
    return Status::Ok();
  }

  // <[ID]>: one token, as a class holding its symbol.
  Status LexTokenRef(Token* tok) {
    if (text_.substr(pos_, 2) != "<[") return Error("expected '<[' (a token reference <[ID]>)");
    Advance(), Advance();
    uint64_t id = 0;
    size_t digits = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      id = id * 10 + static_cast<uint64_t>(text_[pos_] - '0');
      if (id > kMaxTokenSymbolId) {
        return ErrorAt(
            tok->line, tok->column,
            "token reference: the id is larger than " + std::to_string(kMaxTokenSymbolId));
      }
      Advance();
      ++digits;
    }
    if (digits == 0 || text_.substr(pos_, 2) != "]>") {
      return ErrorAt(tok->line, tok->column, "token reference: expected <[ID]> with a decimal ID");
    }
    Advance(), Advance();
    tok->kind = Tok::kClass;
    const uint32_t cp = kTokenSymbolBase + static_cast<uint32_t>(id);
    tok->cls.ranges.push_back({cp, cp});
    return Status::Ok();
  }

  Status ReadNumber(uint32_t* v) {
    if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') {
      return Error("bad repetition: expected a number");
    }
    uint64_t n = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      n = n * 10 + static_cast<uint64_t>(text_[pos_] - '0');
      if (n > limits_.max_repetition) {
        return Status::ResourceExhausted("grammar: line " + std::to_string(line_) + ", column " +
                                         std::to_string(column_) +
                                         ": repetition bound is larger than the limit of " +
                                         std::to_string(limits_.max_repetition));
      }
      Advance();
    }
    *v = static_cast<uint32_t>(n);
    return Status::Ok();
  }

  Status LexBraces(Token* tok) {
    Advance();  // {
    tok->kind = Tok::kRepeat;
    SkipInline();
    GANNET_RETURN_IF_ERROR(ReadNumber(&tok->min));
    SkipInline();
    tok->max = tok->min;
    if (pos_ < text_.size() && text_[pos_] == ',') {
      Advance();
      SkipInline();
      if (pos_ < text_.size() && text_[pos_] == '}') {
        tok->max = Token::kUnbounded;
      } else {
        GANNET_RETURN_IF_ERROR(ReadNumber(&tok->max));
        SkipInline();
      }
    }
    if (pos_ >= text_.size() || text_[pos_] != '}') return Error("bad repetition: expected '}'");
    Advance();
    if (tok->max < tok->min) {
      return ErrorAt(tok->line, tok->column, "bad repetition: {m,n} with m > n");
    }
    return Status::Ok();
  }

  void SkipInline() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) Advance();
  }

  std::string_view text_;
  const GbnfLimits& limits_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
};

// Builds rules from tokens with an explicit stack of open groups.
class Parser {
 public:
  Parser(std::string_view text, const GbnfLimits& limits) : lexer_(text, limits), limits_(limits) {}

  Result<ParsedGrammar> Parse() {
    GANNET_RETURN_IF_ERROR(lexer_.Next(&tok_));
    while (tok_.kind != Tok::kEnd) GANNET_RETURN_IF_ERROR(ParseRule());
    for (const auto& [name, where] : first_use_) {
      auto it = defined_.find(name);
      if (it == defined_.end()) {
        return Lexer::ErrorAt(where.first, where.second, "undefined rule '" + name + "'");
      }
    }
    auto root = defined_.find("root");
    if (root == defined_.end()) {
      return Lexer::ErrorAt(1, 1, "the grammar has no 'root' rule (the start rule)");
    }
    out_.root = root->second;
    return std::move(out_);
  }

 private:
  struct Frame {
    int line = 0, column = 0;  // of the '(' (or of the rule name for the outermost frame)
    std::vector<std::vector<Symbol>> alternatives;
    size_t atom_start = SIZE_MAX;  // start of the last atom in alternatives.back(), if any
  };

  Status ParseRule() {
    if (tok_.kind != Tok::kIdent)
      return Lexer::ErrorAt(tok_.line, tok_.column, "expected a rule name");
    std::string name = tok_.ident;
    int line = tok_.line, column = tok_.column;
    GANNET_RETURN_IF_ERROR(lexer_.Next(&tok_));
    if (tok_.kind != Tok::kDefine) {
      return Lexer::ErrorAt(tok_.line, tok_.column, "expected '::=' after '" + name + "'");
    }
    uint32_t id;
    GANNET_ASSIGN_OR_RETURN(id, RuleId(name, line, column));
    if (!out_.rules[id].alternatives.empty() || defined_.count(name)) {
      return Lexer::ErrorAt(line, column, "rule '" + name + "' is defined twice");
    }
    defined_[name] = id;
    out_.rules[id].line = line;
    out_.rules[id].column = column;
    current_rule_ = name;
    generated_count_ = 0;

    std::vector<Frame> frames(1);
    frames[0].line = line;
    frames[0].column = column;
    frames[0].alternatives.emplace_back();
    GANNET_RETURN_IF_ERROR(lexer_.Next(&tok_));
    while (true) {
      Frame& f = frames.back();
      switch (tok_.kind) {
        case Tok::kEnd:
          if (frames.size() > 1) return Lexer::ErrorAt(f.line, f.column, "unbalanced '(': no ')'");
          out_.rules[id].alternatives = std::move(frames[0].alternatives);
          return Status::Ok();
        case Tok::kIdent: {
          if (lexer_.DefineFollows()) {  // the next rule begins
            if (frames.size() > 1)
              return Lexer::ErrorAt(f.line, f.column, "unbalanced '(': no ')'");
            out_.rules[id].alternatives = std::move(frames[0].alternatives);
            return Status::Ok();
          }
          uint32_t ref;
          GANNET_ASSIGN_OR_RETURN(ref, RuleId(tok_.ident, tok_.line, tok_.column));
          if (!first_use_.count(tok_.ident)) first_use_[tok_.ident] = {tok_.line, tok_.column};
          f.atom_start = f.alternatives.back().size();
          GANNET_RETURN_IF_ERROR(Append(&f, {Symbol::Kind::kRule, ref}));
          break;
        }
        case Tok::kString:
          f.atom_start = f.alternatives.back().size();
          for (uint32_t cp : tok_.chars) {
            GANNET_RETURN_IF_ERROR(
                Append(&f, {Symbol::Kind::kChars, ClassId({false, {{cp, cp}}})}));
          }
          break;
        case Tok::kClass:
        case Tok::kDot:
          f.atom_start = f.alternatives.back().size();
          GANNET_RETURN_IF_ERROR(Append(&f, {Symbol::Kind::kChars, ClassId(tok_.cls)}));
          break;
        case Tok::kBar:
          f.alternatives.emplace_back();
          f.atom_start = SIZE_MAX;
          break;
        case Tok::kLParen:
          if (frames.size() > limits_.max_nesting) {
            return Status::ResourceExhausted(
                Lexer::ErrorAt(
                    tok_.line, tok_.column,
                    "groups nest deeper than the limit of " + std::to_string(limits_.max_nesting))
                    .message());
          }
          frames.emplace_back();
          frames.back().line = tok_.line;
          frames.back().column = tok_.column;
          frames.back().alternatives.emplace_back();
          break;
        case Tok::kRParen: {
          if (frames.size() == 1) return Lexer::ErrorAt(tok_.line, tok_.column, "unbalanced ')'");
          uint32_t group;
          GANNET_ASSIGN_OR_RETURN(group, NewRule(f.line, f.column, std::move(f.alternatives)));
          frames.pop_back();
          Frame& parent = frames.back();
          parent.atom_start = parent.alternatives.back().size();
          GANNET_RETURN_IF_ERROR(Append(&parent, {Symbol::Kind::kRule, group}));
          break;
        }
        case Tok::kRepeat:
          GANNET_RETURN_IF_ERROR(ApplyRepeat(&f));
          break;
        case Tok::kDefine:
          return Lexer::ErrorAt(tok_.line, tok_.column, "unexpected '::='");
      }
      GANNET_RETURN_IF_ERROR(lexer_.Next(&tok_));
    }
  }

  // Replaces the last atom of f's current alternative by its repetition tok_.min..tok_.max.
  Status ApplyRepeat(Frame* f) {
    std::vector<Symbol>& seq = f->alternatives.back();
    if (f->atom_start == SIZE_MAX || f->atom_start > seq.size()) {
      return Lexer::ErrorAt(tok_.line, tok_.column, "repetition operator with nothing before it");
    }
    int line = tok_.line, column = tok_.column;
    std::vector<Symbol> atom_seq(seq.begin() + static_cast<ptrdiff_t>(f->atom_start), seq.end());
    seq.resize(f->atom_start);
    symbols_ -= atom_seq.size();
    Symbol atom;
    if (atom_seq.size() == 1) {
      atom = atom_seq[0];
    } else {
      uint32_t r;
      GANNET_ASSIGN_OR_RETURN(r, NewRule(line, column, {std::move(atom_seq)}));
      atom = {Symbol::Kind::kRule, r};
    }
    for (uint32_t i = 0; i < tok_.min; ++i) GANNET_RETURN_IF_ERROR(Append(f, atom));
    if (tok_.max == Token::kUnbounded) {  // R ::= atom R | ""
      uint32_t r;
      GANNET_ASSIGN_OR_RETURN(r, NewRule(line, column, {}));
      GANNET_RETURN_IF_ERROR(Charge(2));
      out_.rules[r].alternatives = {{atom, {Symbol::Kind::kRule, r}}, {}};
      GANNET_RETURN_IF_ERROR(Append(f, {Symbol::Kind::kRule, r}));
    } else if (tok_.max > tok_.min) {  // O_1 ::= atom | "", O_k ::= atom O_{k-1} | ""
      uint32_t prev = 0;
      for (uint32_t k = 1; k <= tok_.max - tok_.min; ++k) {
        std::vector<Symbol> alt = {atom};
        if (k > 1) alt.push_back({Symbol::Kind::kRule, prev});
        GANNET_RETURN_IF_ERROR(Charge(alt.size()));
        uint32_t r;
        GANNET_ASSIGN_OR_RETURN(r, NewRule(line, column, {std::move(alt), {}}));
        prev = r;
      }
      GANNET_RETURN_IF_ERROR(Append(f, {Symbol::Kind::kRule, prev}));
    }
    // What was appended is the atom a following postfix applies to (wrapped into one rule then,
    // so that `X{2}*` repeats the pair); an empty repetition leaves nothing to apply to.
    if (seq.size() == f->atom_start) f->atom_start = SIZE_MAX;
    return Status::Ok();
  }

  Status Charge(size_t n) {
    symbols_ += n;
    if (symbols_ > limits_.max_symbols) {
      return Status::ResourceExhausted(Lexer::ErrorAt(tok_.line, tok_.column,
                                                      "the grammar expands to more than " +
                                                          std::to_string(limits_.max_symbols) +
                                                          " symbols")
                                           .message());
    }
    return Status::Ok();
  }

  Status Append(Frame* f, Symbol s) {
    GANNET_RETURN_IF_ERROR(Charge(1));
    f->alternatives.back().push_back(s);
    return Status::Ok();
  }

  Result<uint32_t> AddRule(ParsedRule rule) {
    if (out_.rules.size() >= limits_.max_rules) {
      return Status::ResourceExhausted(
          Lexer::ErrorAt(
              tok_.line, tok_.column,
              "the grammar needs more than " + std::to_string(limits_.max_rules) + " rules")
              .message());
    }
    out_.rules.push_back(std::move(rule));
    return static_cast<uint32_t>(out_.rules.size() - 1);
  }

  Result<uint32_t> NewRule(int line, int column, std::vector<std::vector<Symbol>> alternatives) {
    ParsedRule rule;
    rule.name = current_rule_ + "/" + std::to_string(++generated_count_);
    rule.line = line;
    rule.column = column;
    rule.generated = true;
    rule.alternatives = std::move(alternatives);
    return AddRule(std::move(rule));
  }

  // The id of a user rule, created at its first mention.
  Result<uint32_t> RuleId(const std::string& name, int line, int column) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    ParsedRule rule;
    rule.name = name;
    rule.line = line;
    rule.column = column;
    uint32_t id;
    GANNET_ASSIGN_OR_RETURN(id, AddRule(std::move(rule)));
    ids_[name] = id;
    return id;
  }

  uint32_t ClassId(const CharClass& cls) {
    auto it = class_ids_.find(cls);
    if (it != class_ids_.end()) return it->second;
    out_.classes.push_back(cls);
    auto id = static_cast<uint32_t>(out_.classes.size() - 1);
    class_ids_.emplace(cls, id);
    return id;
  }

  struct ClassLess {
    bool operator()(const CharClass& a, const CharClass& b) const {
      if (a.negated != b.negated) return a.negated < b.negated;
      return std::lexicographical_compare(a.ranges.begin(), a.ranges.end(), b.ranges.begin(),
                                          b.ranges.end(),
                                          [](const CharRange& x, const CharRange& y) {
                                            return x.lo != y.lo ? x.lo < y.lo : x.hi < y.hi;
                                          });
    }
  };

  Lexer lexer_;
  const GbnfLimits& limits_;
  Token tok_;
  ParsedGrammar out_;
  std::map<std::string, uint32_t> ids_;
  std::map<std::string, uint32_t> defined_;
  std::map<std::string, std::pair<int, int>> first_use_;
  std::map<CharClass, uint32_t, ClassLess> class_ids_;
  std::string current_rule_;
  uint32_t generated_count_ = 0;
  size_t symbols_ = 0;
};

}  // namespace

bool CharClass::Contains(uint32_t cp) const {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                             [](uint32_t v, const CharRange& r) { return v < r.lo; });
  bool in = it != ranges.begin() && cp <= std::prev(it)->hi;
  return negated ? !in && cp <= kMaxCodepoint : in;
}

bool CharClass::Intersects(uint32_t lo, uint32_t hi) const {
  if (!negated) {
    for (const CharRange& r : ranges) {
      if (r.lo <= hi && lo <= r.hi) return true;
    }
    return false;
  }
  // Ranges are merged, so [lo, hi] is inside their union only when inside a single one.
  if (lo > kMaxCodepoint) return false;
  hi = std::min(hi, kMaxCodepoint);
  for (const CharRange& r : ranges) {
    if (r.lo <= lo && hi <= r.hi) return false;
  }
  return true;
}

Result<ParsedGrammar> ParseGbnf(std::string_view text, const GbnfLimits& limits) {
  if (text.size() > limits.max_text_bytes) {
    return Status::ResourceExhausted("grammar: the text is " + std::to_string(text.size()) +
                                     " bytes, more than the limit of " +
                                     std::to_string(limits.max_text_bytes));
  }
  Parser parser(text, limits);
  return parser.Parse();
}

}  // namespace gannet::grammar
