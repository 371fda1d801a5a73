// Lexer of the Jinja subset used by chat templates: template text -> a flat token stream.
//
// Whitespace control is resolved here, as Jinja's lexer does it: `{%-`/`-%}` (and the same on
// `{{ }}` and `{# #}`) strip all whitespace on that side; trim_blocks drops the first newline after
// a block or comment tag; lstrip_blocks drops spaces and tabs before a block or comment tag that
// starts its line (`{%+` opts out). "\r\n" and "\r" become "\n"; one trailing newline of the
// template is dropped (Jinja's keep_trailing_newline=False). `{% raw %}` sections become text.
// Thread-safety: pure function.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace gannet::jinja {

enum class TokenKind {
  kText,        // literal template data (value = the text)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // identifier or keyword
  kString,      // string literal, escapes decoded
  kInt,         // value = digits (underscores removed)
  kFloat,       // value = the literal
  kOp,          // operator or punctuation: + - * / // % ** ~ == != < > <= >= = . , : | ( ) [ ] { }
  kEof,
};

struct Token {
  TokenKind kind = TokenKind::kEof;
  std::string value;
  int line = 1;  // 1-based position of the token's first character
  int column = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  size_t max_tokens = 1 << 20;  // bound on the token stream of one template
};

// Errors (unterminated tags, strings or comments, characters outside the language) name the
// template, line and column.
Result<std::vector<Token>> Lex(std::string_view source, std::string_view template_name,
                               const LexOptions& options);

// "template 'name', line L, column C: message"
std::string ErrorAt(std::string_view template_name, int line, int column, std::string_view message);

}  // namespace gannet::jinja
