// Parser of the Jinja subset used by chat templates: tokens -> an AST of statements and
// expressions, with Jinja's operator precedence (jinja2/parser.py):
//   ternary `a if c else b` < or < and < not < comparisons (== != < > <= >= in, not in) <
//   + - < ~ < * / // % < ** < unary - + < postfix (.attr [i] [a:b:c] (call)) with filters `|f` and
//   tests `is [not] t`.
// Statements: if/elif/else, for (tuple targets, `if` filter, else), set (name, tuple, ns.attr,
// block set), macro, filter blocks, break/continue (loopcontrols), generation (Hugging Face's
// assistant-mask tag, rendered as its body). include/import/extends/block and anything else
// reach no file: they are parse errors naming the tag.
// Thread-safety: a parsed Template is immutable.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "jinja/lexer.h"
#include "jinja/value.h"

namespace gannet::jinja {

enum class ExprKind {
  kLiteral,  // value
  kName,     // name
  kList,     // args = items
  kTuple,    // args = items
  kDict,     // args = key0, value0, key1, value1, ...
  kAttr,     // args[0].name
  kItem,     // args[0][args[1]]
  kSlice,    // args[0][args[1]:args[2]:args[3]] (null entries are omitted bounds)
  kCall,     // args[0](args[1:], kwargs)
  kFilter,   // args[0] | name(args[1:], kwargs); args[0] is null inside {% filter %} blocks
  kTest,     // args[0] is [not] name(args[1:]); negated
  kUnary,    // op args[0]: "-", "+", "not"
  kBinary,   // args[0] op args[1]: + - * / // % ** ~ and or
  kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ... (chained, as Python)
  kCond,     // args[0] if args[1] else args[2] (args[2] may be null: undefined)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0;
  int column = 0;
  int height = 1;  // 1 + the tallest child: bounds the evaluator's recursion
  Value value;
  std::string name;              // kName, kAttr, kFilter, kTest; kUnary / kBinary operator
  std::vector<std::string> ops;  // kCompare
  bool negated = false;          // kTest
  std::vector<std::unique_ptr<Expr>> args;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
};

enum class StmtKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // if expr: body else else_body (elif nests an kIf in else_body)
  kFor,          // for targets in expr [if cond] : body else else_body
  kSet,          // set targets = expr, or block set (expr null: body rendered to a string)
  kSetAttr,      // set expr(namespace).attr = value
  kMacro,        // macro name(params) body
  kFilterBlock,  // filter expr(args[0] null) body
  kBreak,
  kContinue,
  kGeneration,  // body
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  int column = 0;
  std::string text;                  // kText; kMacro name; kSetAttr attribute
  std::unique_ptr<Expr> expr;        // output / condition / iterable / value / filter chain
  std::unique_ptr<Expr> target;      // kSetAttr: the namespace expression
  std::unique_ptr<Expr> cond;        // kFor: `if` filter
  std::vector<std::string> targets;  // kFor / kSet names (several: tuple unpacking)
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> params;  // kMacro: name, default
  std::vector<std::unique_ptr<Stmt>> body;
  std::vector<std::unique_ptr<Stmt>> else_body;
};

struct ParseOptions {
  LexOptions lex;
  int max_nesting = 128;  // blocks nested deeper, and expression trees taller than twice this, are
                          // an error: it bounds the parser's and the evaluator's recursion
};

struct Template {
  std::string name;
  std::vector<std::unique_ptr<Stmt>> body;
};

// Errors name the template, line and column of the offending token.
Result<std::unique_ptr<Template>> ParseTemplate(std::string_view source, std::string_view name,
                                                const ParseOptions& options);

}  // namespace gannet::jinja
