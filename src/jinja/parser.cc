// Recursive-descent parser following jinja2/parser.py's grammar for the supported subset.
#include "jinja/parser.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <initializer_list>

namespace gannet::jinja {

namespace {

using ExprPtr = std::unique_ptr<Expr>;
using StmtList = std::vector<std::unique_ptr<Stmt>>;

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::string_view name, const ParseOptions& o)
      : t_(std::move(tokens)), name_(name), o_(o) {}

  Result<StmtList> Run() {
    StmtList body;
    GANNET_ASSIGN_OR_RETURN(const std::string end, ParseUntil(&body, {}));
    (void)end;
    return body;
  }

 private:
  const Token& Cur() const { return t_[pos_]; }
  const Token& Peek(size_t k = 1) const { return t_[std::min(pos_ + k, t_.size() - 1)]; }
  void Advance() {
    if (pos_ + 1 < t_.size()) ++pos_;
  }
  bool IsOp(std::string_view op) const { return Cur().kind == TokenKind::kOp && Cur().value == op; }
  bool IsName(std::string_view n) const {
    return Cur().kind == TokenKind::kName && Cur().value == n;
  }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Advance();
    return true;
  }
  bool SkipName(std::string_view n) {
    if (!IsName(n)) return false;
    Advance();
    return true;
  }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::kEof:
        return "end of template";
      case TokenKind::kText:
        return "template text";
      case TokenKind::kString:
        return "string literal";
      case TokenKind::kBlockEnd:
        return "'%}'";
      case TokenKind::kVarEnd:
        return "'}}'";
      default:
        return "'" + t.value + "'";
    }
  }

  Status ErrorAt(const Token& t, std::string_view message) const {
    return Status::InvalidArgument(jinja::ErrorAt(name_, t.line, t.column, message));
  }
  Status Unexpected(std::string_view expected) const {
    return ErrorAt(Cur(), "unexpected " + Describe(Cur()) + ", expected " + std::string(expected));
  }
  Status ExpectOp(std::string_view op) {
    if (!SkipOp(op)) return Unexpected("'" + std::string(op) + "'");
    return Status::Ok();
  }
  Status ExpectBlockEnd() {
    if (Cur().kind != TokenKind::kBlockEnd) return Unexpected("'%}'");
    Advance();
    return Status::Ok();
  }
  Result<std::string> ExpectName() {
    if (Cur().kind != TokenKind::kName) return Unexpected("a name");
    std::string n = Cur().value;
    Advance();
    return n;
  }

  ExprPtr Node(ExprKind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  // Adds a child and keeps `height`; a tree taller than the limit is an error.
  Status Add(Expr* parent, ExprPtr child) {
    if (child) parent->height = std::max(parent->height, child->height + 1);
    parent->args.push_back(std::move(child));
    if (parent->height > 2 * o_.max_nesting) {
      return ErrorAt(
          Cur(), "expression nested too deeply (limit " + std::to_string(2 * o_.max_nesting) + ")");
    }
    return Status::Ok();
  }

  // --- statements ---------------------------------------------------------------------------

  // Parses statements until a block tag named in `ends` (returned; the position is then just after
  // that name) or the end of the template (only when `ends` is empty).
  Result<std::string> ParseUntil(StmtList* out, std::initializer_list<std::string_view> ends) {
    while (true) {
      const Token& tok = Cur();
      switch (tok.kind) {
        case TokenKind::kEof: {
          if (ends.size() == 0) return std::string();
          std::string want;
          for (const std::string_view e : ends)
            want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
          return ErrorAt(tok, "unexpected end of template, expected " + want);
        }
        case TokenKind::kText: {
          auto s = std::make_unique<Stmt>();
          s->kind = StmtKind::kText;
          s->line = tok.line;
          s->column = tok.column;
          s->text = tok.value;
          out->push_back(std::move(s));
          Advance();
          break;
        }
        case TokenKind::kVarBegin: {
          auto s = std::make_unique<Stmt>();
          s->kind = StmtKind::kOutput;
          s->line = tok.line;
          s->column = tok.column;
          Advance();
          GANNET_ASSIGN_OR_RETURN(s->expr, ParseTuple(true));
          if (Cur().kind != TokenKind::kVarEnd) return Unexpected("'}}'");
          Advance();
          out->push_back(std::move(s));
          break;
        }
        case TokenKind::kBlockBegin: {
          const Token& name = Peek();
          if (name.kind != TokenKind::kName) {
            Advance();
            return Unexpected("a tag name");
          }
          if (std::find(ends.begin(), ends.end(), name.value) != ends.end()) {
            Advance();
            Advance();
            return name.value;
          }
          GANNET_RETURN_IF_ERROR(ParseStatement(out));
          break;
        }
        default:
          return Unexpected("template text or a tag");
      }
    }
  }

  Status ParseStatement(StmtList* out) {
    if (++stmt_depth_ > o_.max_nesting) {
      return ErrorAt(Cur(),
                     "blocks nested too deeply (limit " + std::to_string(o_.max_nesting) + ")");
    }
    Advance();  // {%
    const Token at = Cur();
    const std::string tag = at.value;
    Advance();
    auto s = std::make_unique<Stmt>();
    s->line = at.line;
    s->column = at.column;
    Status st;
    if (tag == "if") {
      st = ParseIf(s.get());
    } else if (tag == "for") {
      st = ParseFor(s.get());
    } else if (tag == "set") {
      st = ParseSet(s.get());
    } else if (tag == "macro") {
      st = ParseMacro(s.get());
    } else if (tag == "filter") {
      st = ParseFilterBlock(s.get());
    } else if (tag == "generation") {
      s->kind = StmtKind::kGeneration;
      st = ExpectBlockEnd();
      if (st.ok()) st = ParseUntil(&s->body, {"endgeneration"}).status();
      if (st.ok()) st = ExpectBlockEnd();
    } else if (tag == "break" || tag == "continue") {
      s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      if (loop_depth_ == 0) return ErrorAt(at, "'" + tag + "' outside of a loop");
      st = ExpectBlockEnd();
    } else if (tag == "include" || tag == "import" || tag == "from" || tag == "extends" ||
               tag == "block") {
      return ErrorAt(
          at, "tag '" + tag + "' is not supported: chat templates cannot load other templates");
    } else {
      return ErrorAt(at, "unknown or unsupported tag '" + tag + "'");
    }
    GANNET_RETURN_IF_ERROR(st);
    out->push_back(std::move(s));
    --stmt_depth_;
    return Status::Ok();
  }

  Status ParseIf(Stmt* s) {
    s->kind = StmtKind::kIf;
    GANNET_ASSIGN_OR_RETURN(s->expr, ParseTuple(false));
    GANNET_RETURN_IF_ERROR(ExpectBlockEnd());
    GANNET_ASSIGN_OR_RETURN(const std::string end, ParseUntil(&s->body, {"elif", "else", "endif"}));
    if (end == "elif") {
      auto elif = std::make_unique<Stmt>();
      elif->line = Cur().line;
      elif->column = Cur().column;
      GANNET_RETURN_IF_ERROR(ParseIf(elif.get()));
      s->else_body.push_back(std::move(elif));
      return Status::Ok();
    }
    if (end == "else") {
      GANNET_RETURN_IF_ERROR(ExpectBlockEnd());
      GANNET_RETURN_IF_ERROR(ParseUntil(&s->else_body, {"endif"}).status());
    }
    return ExpectBlockEnd();
  }

  Status ParseTargets(std::vector<std::string>* names) {
    const bool paren = SkipOp("(");
    do {
      GANNET_ASSIGN_OR_RETURN(std::string n, ExpectName());
      names->push_back(std::move(n));
    } while (SkipOp(",") && Cur().kind == TokenKind::kName && !IsName("in"));
    if (paren) GANNET_RETURN_IF_ERROR(ExpectOp(")"));
    return Status::Ok();
  }

  Status ParseFor(Stmt* s) {
    s->kind = StmtKind::kFor;
    GANNET_RETURN_IF_ERROR(ParseTargets(&s->targets));
    if (!SkipName("in")) return Unexpected("'in'");
    GANNET_ASSIGN_OR_RETURN(s->expr, ParseTuple(false));
    if (SkipName("if")) {
      GANNET_ASSIGN_OR_RETURN(s->cond, ParseExpression(true));
    }
    if (IsName("recursive")) return ErrorAt(Cur(), "recursive loops are not supported");
    GANNET_RETURN_IF_ERROR(ExpectBlockEnd());
    ++loop_depth_;
    GANNET_ASSIGN_OR_RETURN(const std::string end, ParseUntil(&s->body, {"else", "endfor"}));
    --loop_depth_;
    if (end == "else") {
      GANNET_RETURN_IF_ERROR(ExpectBlockEnd());
      GANNET_RETURN_IF_ERROR(ParseUntil(&s->else_body, {"endfor"}).status());
    }
    return ExpectBlockEnd();
  }

  Status ParseSet(Stmt* s) {
    if (Cur().kind == TokenKind::kName && Peek().kind == TokenKind::kOp && Peek().value == ".") {
      s->kind = StmtKind::kSetAttr;
      s->target = Node(ExprKind::kName, Cur());
      s->target->name = Cur().value;
      Advance();
      Advance();
      GANNET_ASSIGN_OR_RETURN(s->text, ExpectName());
      GANNET_RETURN_IF_ERROR(ExpectOp("="));
      GANNET_ASSIGN_OR_RETURN(s->expr, ParseTuple(true));
      return ExpectBlockEnd();
    }
    s->kind = StmtKind::kSet;
    GANNET_RETURN_IF_ERROR(ParseTargets(&s->targets));
    if (SkipOp("=")) {
      GANNET_ASSIGN_OR_RETURN(s->expr, ParseTuple(true));
      return ExpectBlockEnd();
    }
    if (s->targets.size() != 1) return Unexpected("'='");
    GANNET_RETURN_IF_ERROR(ExpectBlockEnd());
    GANNET_RETURN_IF_ERROR(ParseUntil(&s->body, {"endset"}).status());
    return ExpectBlockEnd();
  }

  Status ParseMacro(Stmt* s) {
    s->kind = StmtKind::kMacro;
    GANNET_ASSIGN_OR_RETURN(s->text, ExpectName());
    GANNET_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      GANNET_ASSIGN_OR_RETURN(std::string param, ExpectName());
      ExprPtr dflt;
      if (SkipOp("=")) {
        GANNET_ASSIGN_OR_RETURN(dflt, ParseExpression(true));
      }
      s->params.emplace_back(std::move(param), std::move(dflt));
      if (!SkipOp(",")) break;
    }
    GANNET_RETURN_IF_ERROR(ExpectOp(")"));
    GANNET_RETURN_IF_ERROR(ExpectBlockEnd());
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    GANNET_RETURN_IF_ERROR(ParseUntil(&s->body, {"endmacro"}).status());
    loop_depth_ = saved_loops;
    return ExpectBlockEnd();
  }

  Status ParseFilterBlock(Stmt* s) {
    s->kind = StmtKind::kFilterBlock;
    ExprPtr chain;
    do {
      GANNET_ASSIGN_OR_RETURN(chain, ParseFilter(std::move(chain)));
    } while (SkipOp("|"));
    s->expr = std::move(chain);
    GANNET_RETURN_IF_ERROR(ExpectBlockEnd());
    GANNET_RETURN_IF_ERROR(ParseUntil(&s->body, {"endfilter"}).status());
    return ExpectBlockEnd();
  }

  // --- expressions --------------------------------------------------------------------------

  bool AtTupleEnd() const {
    const Token& t = Cur();
    return t.kind == TokenKind::kVarEnd || t.kind == TokenKind::kBlockEnd ||
           t.kind == TokenKind::kEof ||
           (t.kind == TokenKind::kOp && (t.value == ")" || t.value == "=")) ||
           (t.kind == TokenKind::kName && (t.value == "if" || t.value == "recursive"));
  }

  Result<ExprPtr> ParseTuple(bool condexpr) {
    const Token at = Cur();
    GANNET_ASSIGN_OR_RETURN(ExprPtr first, ParseExpression(condexpr));
    if (!IsOp(",")) return first;
    auto tuple = Node(ExprKind::kTuple, at);
    GANNET_RETURN_IF_ERROR(Add(tuple.get(), std::move(first)));
    while (SkipOp(",") && !AtTupleEnd()) {
      GANNET_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(condexpr));
      GANNET_RETURN_IF_ERROR(Add(tuple.get(), std::move(item)));
    }
    return tuple;
  }

  Result<ExprPtr> ParseExpression(bool condexpr) {
    if (++expr_depth_ > o_.max_nesting) {
      return ErrorAt(Cur(),
                     "expression nested too deeply (limit " + std::to_string(o_.max_nesting) + ")");
    }
    GANNET_ASSIGN_OR_RETURN(ExprPtr e, ParseBinary(0));
    while (condexpr && IsName("if")) {
      auto cond = Node(ExprKind::kCond, Cur());
      Advance();
      GANNET_ASSIGN_OR_RETURN(ExprPtr test, ParseBinary(0));
      ExprPtr other;
      if (SkipName("else")) {
        GANNET_ASSIGN_OR_RETURN(other, ParseExpression(true));
      }
      GANNET_RETURN_IF_ERROR(Add(cond.get(), std::move(e)));
      GANNET_RETURN_IF_ERROR(Add(cond.get(), std::move(test)));
      GANNET_RETURN_IF_ERROR(Add(cond.get(), std::move(other)));
      e = std::move(cond);
    }
    --expr_depth_;
    return e;
  }

  // Levels: 0 or, 1 and, 2 not, 3 compare, 4 + -, 5 ~, 6 * / // %, 7 **.
  Result<ExprPtr> ParseBinary(int level) {
    if (level == 2) {
      if (IsName("not")) {
        if (++expr_depth_ > o_.max_nesting) return ErrorAt(Cur(), "expression nested too deeply");
        auto e = Node(ExprKind::kUnary, Cur());
        e->name = "not";
        Advance();
        GANNET_ASSIGN_OR_RETURN(ExprPtr inner, ParseBinary(2));
        GANNET_RETURN_IF_ERROR(Add(e.get(), std::move(inner)));
        --expr_depth_;
        return e;
      }
      return ParseBinary(3);
    }
    if (level == 8) return ParseUnary(true);
    GANNET_ASSIGN_OR_RETURN(ExprPtr left, ParseBinary(level + 1));
    if (level == 3) return ParseCompare(std::move(left));
    while (true) {
      const Token& t = Cur();
      std::string op;
      if (level == 0 && IsName("or")) op = "or";
      if (level == 1 && IsName("and")) op = "and";
      if (t.kind == TokenKind::kOp) {
        if (level == 4 && (t.value == "+" || t.value == "-")) op = t.value;
        if (level == 5 && t.value == "~") op = t.value;
        if (level == 6 && (t.value == "*" || t.value == "/" || t.value == "//" || t.value == "%"))
          op = t.value;
        if (level == 7 && t.value == "**") op = t.value;
      }
      if (op.empty()) return left;
      auto e = Node(ExprKind::kBinary, t);
      e->name = op;
      Advance();
      GANNET_ASSIGN_OR_RETURN(ExprPtr right,
                              level == 7 ? ParseUnary(true) : ParseBinary(level + 1));
      GANNET_RETURN_IF_ERROR(Add(e.get(), std::move(left)));
      GANNET_RETURN_IF_ERROR(Add(e.get(), std::move(right)));
      left = std::move(e);
    }
  }

  Result<ExprPtr> ParseCompare(ExprPtr left) {
    ExprPtr cmp;
    while (true) {
      std::string op;
      const Token& t = Cur();
      if (t.kind == TokenKind::kOp && (t.value == "==" || t.value == "!=" || t.value == "<" ||
                                       t.value == ">" || t.value == "<=" || t.value == ">=")) {
        op = t.value;
        Advance();
      } else if (IsName("in")) {
        op = "in";
        Advance();
      } else if (IsName("not") && Peek().kind == TokenKind::kName && Peek().value == "in") {
        op = "notin";
        Advance();
        Advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = Node(ExprKind::kCompare, t);
        GANNET_RETURN_IF_ERROR(Add(cmp.get(), std::move(left)));
      }
      cmp->ops.push_back(op);
      GANNET_ASSIGN_OR_RETURN(ExprPtr right, ParseBinary(4));
      GANNET_RETURN_IF_ERROR(Add(cmp.get(), std::move(right)));
    }
    return cmp ? std::move(cmp) : std::move(left);
  }

  Result<ExprPtr> ParseUnary(bool with_filter) {
    if (++expr_depth_ > o_.max_nesting) {
      return ErrorAt(Cur(),
                     "expression nested too deeply (limit " + std::to_string(o_.max_nesting) + ")");
    }
    ExprPtr e;
    if (IsOp("-") || IsOp("+")) {
      e = Node(ExprKind::kUnary, Cur());
      e->name = Cur().value;
      Advance();
      GANNET_ASSIGN_OR_RETURN(ExprPtr inner, ParseUnary(false));
      GANNET_RETURN_IF_ERROR(Add(e.get(), std::move(inner)));
    } else {
      GANNET_ASSIGN_OR_RETURN(e, ParsePrimary());
    }
    GANNET_ASSIGN_OR_RETURN(e, ParsePostfix(std::move(e)));
    if (with_filter) {
      GANNET_ASSIGN_OR_RETURN(e, ParseFilterExpr(std::move(e)));
    }
    --expr_depth_;
    return e;
  }

  Result<ExprPtr> ParsePrimary() {
    const Token t = Cur();
    switch (t.kind) {
      case TokenKind::kName: {
        Advance();
        auto e = Node(ExprKind::kLiteral, t);
        if (t.value == "true" || t.value == "True") {
          e->value = Value::Bool(true);
        } else if (t.value == "false" || t.value == "False") {
          e->value = Value::Bool(false);
        } else if (t.value == "none" || t.value == "None") {
          e->value = Value::None();
        } else {
          e->kind = ExprKind::kName;
          e->name = t.value;
        }
        return e;
      }
      case TokenKind::kString: {
        std::string s;
        while (Cur().kind == TokenKind::kString) {  // adjacent literals concatenate
          s += Cur().value;
          Advance();
        }
        auto e = Node(ExprKind::kLiteral, t);
        e->value = Value::Str(std::move(s));
        return e;
      }
      case TokenKind::kInt:
      case TokenKind::kFloat: {
        Advance();
        auto e = Node(ExprKind::kLiteral, t);
        errno = 0;
        if (t.kind == TokenKind::kInt) {
          const long long v = std::strtoll(t.value.c_str(), nullptr, 10);
          if (errno == ERANGE) return ErrorAt(t, "integer literal out of range");
          e->value = Value::Int(v);
        } else {
          e->value = Value::Float(std::strtod(t.value.c_str(), nullptr));
        }
        return e;
      }
      case TokenKind::kOp: {
        if (t.value == "(") {
          Advance();
          if (SkipOp(")")) return Node(ExprKind::kTuple, t);
          GANNET_ASSIGN_OR_RETURN(ExprPtr inner, ParseTuple(true));
          GANNET_RETURN_IF_ERROR(ExpectOp(")"));
          return inner;
        }
        if (t.value == "[" || t.value == "{") {
          const bool dict = t.value == "{";
          Advance();
          auto e = Node(dict ? ExprKind::kDict : ExprKind::kList, t);
          const std::string close = dict ? "}" : "]";
          while (!IsOp(close)) {
            GANNET_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
            GANNET_RETURN_IF_ERROR(Add(e.get(), std::move(item)));
            if (dict) {
              GANNET_RETURN_IF_ERROR(ExpectOp(":"));
              GANNET_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
              GANNET_RETURN_IF_ERROR(Add(e.get(), std::move(value)));
            }
            if (!SkipOp(",")) break;
          }
          GANNET_RETURN_IF_ERROR(ExpectOp(close));
          return e;
        }
        break;
      }
      default:
        break;
    }
    return Unexpected("an expression");
  }

  Status ParseCallArgs(Expr* call) {
    GANNET_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (Cur().kind == TokenKind::kName && Peek().kind == TokenKind::kOp && Peek().value == "=") {
        std::string key = Cur().value;
        Advance();
        Advance();
        GANNET_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        call->height = std::max(call->height, value->height + 1);
        call->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!call->kwargs.empty())
          return ErrorAt(Cur(), "positional argument after a keyword argument");
        if (IsOp("*") || IsOp("**"))
          return ErrorAt(Cur(), "*args / **kwargs in calls are not supported");
        GANNET_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        GANNET_RETURN_IF_ERROR(Add(call, std::move(value)));
      }
      if (!SkipOp(",")) break;
    }
    return ExpectOp(")");
  }

  Result<ExprPtr> ParsePostfix(ExprPtr e) {
    while (true) {
      const Token t = Cur();
      if (SkipOp(".")) {
        if (Cur().kind == TokenKind::kInt) {  // x.0 is x[0]
          auto item = Node(ExprKind::kItem, t);
          auto index = Node(ExprKind::kLiteral, Cur());
          index->value = Value::Int(std::strtoll(Cur().value.c_str(), nullptr, 10));
          Advance();
          GANNET_RETURN_IF_ERROR(Add(item.get(), std::move(e)));
          GANNET_RETURN_IF_ERROR(Add(item.get(), std::move(index)));
          e = std::move(item);
          continue;
        }
        auto attr = Node(ExprKind::kAttr, t);
        GANNET_ASSIGN_OR_RETURN(attr->name, ExpectName());
        GANNET_RETURN_IF_ERROR(Add(attr.get(), std::move(e)));
        e = std::move(attr);
      } else if (SkipOp("[")) {
        GANNET_ASSIGN_OR_RETURN(e, ParseSubscript(std::move(e), t));
      } else if (IsOp("(")) {
        auto call = Node(ExprKind::kCall, t);
        GANNET_RETURN_IF_ERROR(Add(call.get(), std::move(e)));
        GANNET_RETURN_IF_ERROR(ParseCallArgs(call.get()));
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  Result<ExprPtr> ParseSubscript(ExprPtr e, const Token& at) {
    ExprPtr parts[3];
    bool slice = false;
    for (int i = 0; i < 3; ++i) {
      if (!IsOp(":") && !IsOp("]")) {
        GANNET_ASSIGN_OR_RETURN(parts[i], ParseExpression(true));
      }
      if (i < 2 && SkipOp(":")) {
        slice = true;
        continue;
      }
      break;
    }
    GANNET_RETURN_IF_ERROR(ExpectOp("]"));
    if (!slice && !parts[0]) return ErrorAt(at, "empty subscript");
    auto node = Node(slice ? ExprKind::kSlice : ExprKind::kItem, at);
    GANNET_RETURN_IF_ERROR(Add(node.get(), std::move(e)));
    GANNET_RETURN_IF_ERROR(Add(node.get(), std::move(parts[0])));
    if (slice) {
      GANNET_RETURN_IF_ERROR(Add(node.get(), std::move(parts[1])));
      GANNET_RETURN_IF_ERROR(Add(node.get(), std::move(parts[2])));
    }
    return node;
  }

  // `name[(args)]` after a `|`, applied to `base` (null in a {% filter %} tag).
  Result<ExprPtr> ParseFilter(ExprPtr base) {
    auto f = Node(ExprKind::kFilter, Cur());
    GANNET_ASSIGN_OR_RETURN(f->name, ExpectName());
    while (IsOp(".") && Peek().kind == TokenKind::kName) {  // dotted filter names
      Advance();
      f->name += "." + Cur().value;
      Advance();
    }
    GANNET_RETURN_IF_ERROR(Add(f.get(), std::move(base)));
    if (IsOp("(")) GANNET_RETURN_IF_ERROR(ParseCallArgs(f.get()));
    return f;
  }

  Result<ExprPtr> ParseFilterExpr(ExprPtr e) {
    while (true) {
      if (SkipOp("|")) {
        GANNET_ASSIGN_OR_RETURN(e, ParseFilter(std::move(e)));
      } else if (IsName("is")) {
        auto test = Node(ExprKind::kTest, Cur());
        Advance();
        test->negated = SkipName("not");
        GANNET_ASSIGN_OR_RETURN(test->name, ExpectName());
        GANNET_RETURN_IF_ERROR(Add(test.get(), std::move(e)));
        const Token& c = Cur();
        if (IsOp("(")) {
          GANNET_RETURN_IF_ERROR(ParseCallArgs(test.get()));
        } else if ((c.kind == TokenKind::kName || c.kind == TokenKind::kString ||
                    c.kind == TokenKind::kInt || c.kind == TokenKind::kFloat || IsOp("[") ||
                    IsOp("{")) &&
                   !IsName("else") && !IsName("or") && !IsName("and")) {
          if (IsName("is")) return ErrorAt(c, "tests cannot be chained with 'is'");
          GANNET_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
          GANNET_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
          GANNET_RETURN_IF_ERROR(Add(test.get(), std::move(arg)));
        }
        e = std::move(test);
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  std::string_view name_;
  ParseOptions o_;
  int expr_depth_ = 0;
  int stmt_depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Result<std::unique_ptr<Template>> ParseTemplate(std::string_view source, std::string_view name,
                                                const ParseOptions& options) {
  GANNET_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source, name, options.lex));
  Parser parser(std::move(tokens), name, options);
  GANNET_ASSIGN_OR_RETURN(StmtList body, parser.Run());
  auto t = std::make_unique<Template>();
  t->name = std::string(name);
  t->body = std::move(body);
  return t;
}

}  // namespace gannet::jinja
