// Jinja's lexer rules (jinja2/lexer.py) for the delimiters {{ }}, {% %}, {# #}, restated.
#include "jinja/lexer.h"

#include <cctype>
#include <cstdint>

#include "base/utf8.h"

namespace gannet::jinja {

std::string ErrorAt(std::string_view template_name, int line, int column,
                    std::string_view message) {
  return "template '" + std::string(template_name) + "', line " + std::to_string(line) +
         ", column " + std::to_string(column) + ": " + std::string(message);
}

namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

class Lexer {
 public:
  Lexer(std::string src, std::string_view name, const LexOptions& o)
      : src_(std::move(src)), name_(name), o_(o) {}

  Result<std::vector<Token>> Run() {
    size_t pos = 0;
    while (true) {
      const size_t tag = FindTag(pos);
      std::string text = src_.substr(pos, (tag == std::string::npos ? src_.size() : tag) - pos);
      if (strip_next_) {
        size_t i = 0;
        while (i < text.size() && IsSpace(text[i])) ++i;
        text.erase(0, i);
      } else if (trim_next_newline_ && !text.empty() && text[0] == '\n') {
        text.erase(0, 1);
      }
      strip_next_ = trim_next_newline_ = false;
      if (tag == std::string::npos) {
        GANNET_RETURN_IF_ERROR(EmitText(std::move(text), pos));
        break;
      }
      const char kind = src_[tag + 1];
      const char mod = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (mod == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      } else if (o_.lstrip_blocks && mod != '+' && (kind == '%' || kind == '#')) {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        const bool line_starting = pos == 0 || src_[pos - 1] == '\n';
        if (l_pos > 0 || line_starting) {
          bool blank = true;
          for (size_t i = l_pos; i < text.size(); ++i)
            blank = blank && (text[i] == ' ' || text[i] == '\t');
          if (blank) text.erase(l_pos);
        }
      }
      GANNET_RETURN_IF_ERROR(EmitText(std::move(text), pos));
      const size_t body = tag + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      Result<size_t> next = kind == '#' ? Comment(tag, body) : Tag(tag, body, kind);
      if (!next.ok()) return next.status();
      pos = *next;
    }
    Push(TokenKind::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  size_t FindTag(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#'))
        return p;
    }
    return std::string::npos;
  }

  void LineCol(size_t pos, int* line, int* col) const {
    int l = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < pos && i < src_.size(); ++i) {
      if (src_[i] == '\n') {
        ++l;
        line_start = i + 1;
      }
    }
    *line = l;
    *col = static_cast<int>(pos - line_start) + 1;
  }

  Status Error(size_t pos, std::string_view message) const {
    int line, col;
    LineCol(pos, &line, &col);
    return Status::InvalidArgument(ErrorAt(name_, line, col, message));
  }

  // Positions are computed incrementally: tokens are pushed in source order.
  void Push(TokenKind kind, std::string value, size_t pos) {
    while (scan_pos_ < pos && scan_pos_ < src_.size()) {
      if (src_[scan_pos_] == '\n') {
        ++scan_line_;
        scan_line_start_ = scan_pos_ + 1;
      }
      ++scan_pos_;
    }
    tokens_.push_back(
        Token{kind, std::move(value), scan_line_, static_cast<int>(pos - scan_line_start_) + 1});
  }

  Status EmitText(std::string text, size_t pos) {
    if (text.empty()) return Status::Ok();
    if (tokens_.size() >= o_.max_tokens) return Error(pos, "template has too many tokens");
    Push(TokenKind::kText, std::move(text), pos);
    return Status::Ok();
  }

  Result<size_t> Comment(size_t tag, size_t body) {
    const size_t end = src_.find("#}", body);
    if (end == std::string::npos) return Error(tag, "unterminated comment: missing '#}'");
    strip_next_ = end > body && src_[end - 1] == '-';
    trim_next_newline_ = o_.trim_blocks;
    return end + 2;
  }

  // Matches "[ws] word [ws] [-|+] %}" at `p`; returns the position after it, or npos.
  size_t MatchBlock(size_t p, std::string_view word, char* end_mod) const {
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    if (src_.compare(p, word.size(), word) != 0) return std::string::npos;
    p += word.size();
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    *end_mod = '\0';
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) *end_mod = src_[p++];
    if (src_.compare(p, 2, "%}") != 0) return std::string::npos;
    return p + 2;
  }

  Result<size_t> Raw(size_t tag, size_t after, char open_end_mod) {
    // Text up to {% endraw %}, kept as written apart from the tags' own whitespace control.
    for (size_t p = src_.find("{%", after); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t q = p + 2;
      const char mod = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : '\0';
      if (mod) ++q;
      char end_mod;
      const size_t end = MatchBlock(q, "endraw", &end_mod);
      if (end == std::string::npos) continue;
      std::string text = src_.substr(after, p - after);
      if (open_end_mod == '-') {
        size_t i = 0;
        while (i < text.size() && IsSpace(text[i])) ++i;
        text.erase(0, i);
      } else if (o_.trim_blocks && open_end_mod != '+' && !text.empty() && text[0] == '\n') {
        text.erase(0, 1);
      }
      if (mod == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      }
      GANNET_RETURN_IF_ERROR(EmitText(std::move(text), after));
      strip_next_ = end_mod == '-';
      trim_next_newline_ = o_.trim_blocks && end_mod != '+';
      return end;
    }
    return Error(tag, "unterminated raw block: missing '{% endraw %}'");
  }

  Result<size_t> Tag(size_t tag, size_t body, char kind) {
    if (kind == '%') {
      char end_mod;
      const size_t after = MatchBlock(body, "raw", &end_mod);
      if (after != std::string::npos) return Raw(tag, after, end_mod);
    }
    Push(kind == '{' ? TokenKind::kVarBegin : TokenKind::kBlockBegin, kind == '{' ? "{{" : "{%",
         tag);
    int depth = 0;  // open brackets: "}}" inside {{ {'a': {}} }} is two braces, not the end
    size_t p = body;
    while (true) {
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      if (p >= src_.size()) {
        return Error(tag, kind == '{' ? "unterminated '{{': missing '}}'"
                                      : "unterminated '{%': missing '%}'");
      }
      if (tokens_.size() >= o_.max_tokens) return Error(p, "template has too many tokens");
      const char end_char = kind == '{' ? '}' : '%';
      for (const char mod : {'-', '+', '\0'}) {
        if (mod == '+' && kind == '{') continue;
        const size_t q = p + (mod ? 1 : 0);
        if ((mod == '\0' || src_[p] == mod) && q + 1 < src_.size() && src_[q] == end_char &&
            src_[q + 1] == '}' && (depth == 0 || kind == '%')) {
          Push(kind == '{' ? TokenKind::kVarEnd : TokenKind::kBlockEnd, kind == '{' ? "}}" : "%}",
               p);
          strip_next_ = mod == '-';
          trim_next_newline_ = kind == '%' && mod != '+' && o_.trim_blocks;
          return q + 2;
        }
      }
      const char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
          ++e;
        Push(TokenKind::kName, src_.substr(p, e - p), p);
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        GANNET_ASSIGN_OR_RETURN(p, Number(p));
      } else if (c == '\'' || c == '"') {
        GANNET_ASSIGN_OR_RETURN(p, String(p));
      } else {
        static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const std::string_view two : kTwo) {
          if (src_.compare(p, 2, two) == 0) op = two;
        }
        if (op.empty() && std::string_view("+-*/%~<>=.,:|()[]{}").find(c) != std::string_view::npos)
          op = c;
        if (op.empty()) {
          const uint8_t b = static_cast<uint8_t>(c);
          return Error(p, b >= 0x20 && b < 0x7F ? "unexpected character '" + std::string(1, c) + "'"
                                                : "unexpected byte in an expression");
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        Push(TokenKind::kOp, op, p);
        p += op.size();
      }
    }
  }

  Result<size_t> Number(size_t p) {
    const size_t start = p;
    auto digits = [&] {
      while (p < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[p])) || src_[p] == '_'))
        ++p;
    };
    digits();
    bool is_float = false;
    if (p + 1 < src_.size() && src_[p] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[p + 1]))) {
      is_float = true;
      ++p;
      digits();
    }
    if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        is_float = true;
        p = q;
        digits();
      }
    }
    std::string text;
    for (size_t i = start; i < p; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Push(is_float ? TokenKind::kFloat : TokenKind::kInt, text, start);
    return p;
  }

  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // A quoted literal with Python's unicode-escape rules (what Jinja decodes literals with).
  Result<size_t> String(size_t p) {
    const char quote = src_[p];
    const size_t start = p++;
    std::string out;
    while (true) {
      if (p >= src_.size()) return Error(start, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) return Error(start, "unterminated string literal");
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int i = 0; i < n; ++i) {
            const int h = p + i < src_.size() ? HexValue(src_[p + i]) : -1;
            if (h < 0)
              return Error(p - 2,
                           "truncated \\" + std::string(1, e) + " escape in a string literal");
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          if (cp > unicode::kMaxCodepoint)
            return Error(p - 2, "escape beyond U+10FFFF in a string literal");
          p += n;
          unicode::AppendUtf8(cp, &out);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i) {
              cp = cp * 8 + static_cast<uint32_t>(src_[p++] - '0');
            }
            unicode::AppendUtf8(cp, &out);
          } else {  // Python keeps unknown escapes as written
            out += '\\';
            out += e;
          }
      }
    }
    Push(TokenKind::kString, std::move(out), start);
    return p + 1;
  }

  std::string src_;
  std::string_view name_;
  LexOptions o_;
  std::vector<Token> tokens_;
  bool strip_next_ = false;
  bool trim_next_newline_ = false;
  size_t scan_pos_ = 0;
  int scan_line_ = 1;
  size_t scan_line_start_ = 0;
};

}  // namespace

Result<std::vector<Token>> Lex(std::string_view source, std::string_view template_name,
                               const LexOptions& options) {
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src), template_name, options).Run();
}

}  // namespace gannet::jinja
