// The evaluator: statements write into an output buffer, expressions produce Values.
#include "jinja/interpreter.h"

#include <cmath>
#include <limits>
#include <map>
#include <vector>

namespace gannet::jinja {

Status WorkExhausted() { return Status::ResourceExhausted("template exceeded its work limit"); }

Status Budget::Work(uint64_t n) {
  if (!meter_.Charge(n)) {
    return Status::ResourceExhausted(
        "template exceeded its work limit (max_work = " + std::to_string(limits_.max_work) + ")");
  }
  return Status::Ok();
}

Status Budget::String(size_t bytes) {
  if (bytes > limits_.max_string_bytes) {
    return Status::ResourceExhausted(
        "string of " + std::to_string(bytes) +
        " bytes exceeds max_string_bytes = " + std::to_string(limits_.max_string_bytes));
  }
  return Work(bytes);
}

Status Budget::Collection(size_t n) {
  if (n > limits_.max_collection_size) {
    return Status::ResourceExhausted(
        "list of " + std::to_string(n) +
        " elements exceeds max_collection_size = " + std::to_string(limits_.max_collection_size));
  }
  return Work(n);
}

Status Budget::LoopIteration() {
  if (++iterations_ > limits_.max_loop_iterations) {
    return Status::ResourceExhausted("template exceeded max_loop_iterations = " +
                                     std::to_string(limits_.max_loop_iterations));
  }
  return Work(1);
}

namespace {

enum class Flow { kNormal, kBreak, kContinue };

using Scope = std::map<std::string, Value, std::less<>>;

class Interpreter {
 public:
  Interpreter(const Template& t, const Dict& globals, const RenderLimits& limits)
      : tmpl_(t), budget_(limits) {
    Scope root;
    for (const auto& [k, v] : globals.items) root[k] = v;
    AddBuiltinGlobals(&root);
    scopes_.push_back(std::move(root));
  }

  // A namespace can hold itself (`{% set ns.me = ns %}`): clearing every namespace's attributes
  // breaks such reference cycles, so an untrusted template cannot leak memory across renders.
  ~Interpreter() {
    for (Value& ns : namespaces_) ns.ns().attrs.items.clear();
  }
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  Result<std::string> Run() {
    std::string out;
    out_ = &out;
    GANNET_ASSIGN_OR_RETURN(const Flow flow, ExecList(tmpl_.body));
    (void)flow;
    return out;
  }

 private:
  // --- errors -------------------------------------------------------------------------------
  Status Located(int line, int column, const Status& s) const {
    if (s.ok()) return s;
    const std::string prefix = "template '" + tmpl_.name + "', line ";
    if (s.message().rfind(prefix, 0) == 0) return s;  // already located deeper down
    return Status(s.code(), ErrorAt(tmpl_.name, line, column, s.message()));
  }
  Status Fail(const Expr& e, const Status& s) const { return Located(e.line, e.column, s); }
  Status Fail(const Expr& e, std::string message) const {
    return Fail(e, Status::InvalidArgument(std::move(message)));
  }
  static Status UndefinedError(const Value& v) {
    return Status::InvalidArgument(v.undefined_hint().empty() ? "undefined value"
                                                              : v.undefined_hint());
  }

  // --- output -------------------------------------------------------------------------------
  Status Emit(const std::string& s) {
    if (out_->size() + s.size() > budget_.limits().max_output_bytes) {
      return Status::ResourceExhausted("output exceeds max_output_bytes = " +
                                       std::to_string(budget_.limits().max_output_bytes));
    }
    GANNET_RETURN_IF_ERROR(budget_.Work(s.size()));
    out_->append(s);
    return Status::Ok();
  }

  // Renders `body` into a fresh buffer (block set, filter blocks, macros).
  Result<std::string> Capture(const std::vector<std::unique_ptr<Stmt>>& body) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    Result<Flow> r = ExecList(body);
    out_ = saved;
    if (!r.ok()) return r.status();
    return buf;
  }

  // --- scopes -------------------------------------------------------------------------------
  const Value* Lookup(std::string_view name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      const auto found = it->find(name);
      if (found != it->end()) return &found->second;
    }
    return nullptr;
  }
  void Assign(const std::string& name, Value v) { scopes_.back()[name] = std::move(v); }

  void AddBuiltinGlobals(Scope* root) {
    Budget* budget = &budget_;
    (*root)["range"] = Value::MakeCallable("range", [budget](CallArgs& a) -> Result<Value> {
      int64_t bounds[3] = {0, 0, 1};
      if (a.args.empty() || a.args.size() > 3 || !a.kwargs.empty()) {
        return Status::InvalidArgument("range expects 1 to 3 integer arguments");
      }
      for (size_t i = 0; i < a.args.size(); ++i) {
        if (!a.args[i].is_int() && !a.args[i].is_bool()) {
          return Status::InvalidArgument("range: '" + a.args[i].TypeName() +
                                         "' object cannot be interpreted as an integer");
        }
      }
      if (a.args.size() == 1) {
        bounds[1] = a.args[0].int_value();
      } else {
        bounds[0] = a.args[0].int_value();
        bounds[1] = a.args[1].int_value();
        if (a.args.size() == 3) bounds[2] = a.args[2].int_value();
      }
      if (bounds[2] == 0) return Status::InvalidArgument("range() arg 3 must not be zero");
      const long double span = (static_cast<long double>(bounds[1]) - bounds[0]) / bounds[2];
      const size_t n =
          span <= 0 ? 0 : static_cast<size_t>(std::min<long double>(std::ceil(span), 1e18L));
      GANNET_RETURN_IF_ERROR(budget->Collection(n));
      List items;
      items.reserve(n);
      for (size_t i = 0; i < n; ++i)
        items.push_back(Value::Int(bounds[0] + static_cast<int64_t>(i) * bounds[2]));
      return Value::MakeList(std::move(items));
    });
    auto make_dict = [](CallArgs& a, bool is_namespace) -> Result<Value> {
      Dict d;
      if (a.args.size() > 1)
        return Status::InvalidArgument("expected at most 1 positional argument");
      if (!a.args.empty()) {
        if (!a.args[0].is_dict())
          return Status::InvalidArgument("expected a mapping as the positional argument");
        d = a.args[0].dict();
      }
      for (auto& [k, v] : a.kwargs) {
        bool replaced = false;
        for (auto& item : d.items) {
          if (item.first == k) {
            item.second = v;
            replaced = true;
          }
        }
        if (!replaced) d.items.emplace_back(k, v);
      }
      return is_namespace ? Value::MakeNamespace(std::move(d)) : Value::MakeDict(std::move(d));
    };
    std::vector<Value>* namespaces = &namespaces_;
    (*root)["namespace"] =
        Value::MakeCallable("namespace", [make_dict, namespaces](CallArgs& a) -> Result<Value> {
          GANNET_ASSIGN_OR_RETURN(Value ns, make_dict(a, true));
          namespaces->push_back(ns);
          return ns;
        });
    (*root)["dict"] =
        Value::MakeCallable("dict", [make_dict](CallArgs& a) { return make_dict(a, false); });
  }

  // --- statements ---------------------------------------------------------------------------
  Result<Flow> ExecList(const std::vector<std::unique_ptr<Stmt>>& body) {
    for (const auto& s : body) {
      GANNET_ASSIGN_OR_RETURN(const Flow flow, Exec(*s));
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  Status AssignTargets(const Stmt& s, const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      Assign(targets[0], v);
      return Status::Ok();
    }
    if (!v.is_list()) {
      return Located(s.line, s.column,
                     Status::InvalidArgument("cannot unpack non-sequence " + v.TypeName() +
                                             " into " + std::to_string(targets.size()) + " names"));
    }
    if (v.list().size() != targets.size()) {
      return Located(
          s.line, s.column,
          Status::InvalidArgument("cannot unpack " + std::to_string(v.list().size()) +
                                  " values into " + std::to_string(targets.size()) + " names"));
    }
    for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], v.list()[i]);
    return Status::Ok();
  }

  Result<Flow> Exec(const Stmt& s) {
    switch (s.kind) {
      case StmtKind::kText:
        GANNET_RETURN_IF_ERROR(Located(s.line, s.column, Emit(s.text)));
        return Flow::kNormal;
      case StmtKind::kOutput: {
        GANNET_ASSIGN_OR_RETURN(const Value v, Eval(*s.expr));
        const std::string text = ToStr(v, budget_.meter());
        GANNET_RETURN_IF_ERROR(Fail(*s.expr, budget_.Work(0)));
        GANNET_RETURN_IF_ERROR(Fail(*s.expr, Emit(text)));
        return Flow::kNormal;
      }
      case StmtKind::kIf: {
        GANNET_ASSIGN_OR_RETURN(const Value cond, Eval(*s.expr));
        return ExecList(cond.Truthy() ? s.body : s.else_body);
      }
      case StmtKind::kFor:
        return ExecFor(s);
      case StmtKind::kSet: {
        if (s.expr) {
          GANNET_ASSIGN_OR_RETURN(const Value v, Eval(*s.expr));
          GANNET_RETURN_IF_ERROR(AssignTargets(s, s.targets, v));
        } else {
          GANNET_ASSIGN_OR_RETURN(std::string text, Capture(s.body));
          Assign(s.targets[0], Value::Str(std::move(text)));
        }
        return Flow::kNormal;
      }
      case StmtKind::kSetAttr: {
        const Value* ns = Lookup(s.target->name);
        if (ns == nullptr || !ns->is_namespace()) {
          return Located(
              s.line, s.column,
              Status::InvalidArgument("cannot assign attribute on non-namespace object '" +
                                      s.target->name + "'"));
        }
        GANNET_ASSIGN_OR_RETURN(Value v, Eval(*s.expr));
        // Only namespaces carry values from one loop iteration to the next, so bounding their
        // nesting here bounds every value's (an expression adds at most its own height).
        if (v.depth() > budget_.limits().max_value_depth) {
          return Located(
              s.line, s.column,
              Status::ResourceExhausted("value nested deeper than max_value_depth = " +
                                        std::to_string(budget_.limits().max_value_depth)));
        }
        Dict& attrs = ns->ns().attrs;
        for (auto& [k, old] : attrs.items) {
          if (k == s.text) {
            old = std::move(v);
            return Flow::kNormal;
          }
        }
        attrs.items.emplace_back(s.text, std::move(v));
        return Flow::kNormal;
      }
      case StmtKind::kMacro: {
        const Stmt* macro = &s;
        Assign(s.text, Value::MakeCallable(
                           s.text, [this, macro](CallArgs& a) { return CallMacro(*macro, a); }));
        return Flow::kNormal;
      }
      case StmtKind::kFilterBlock: {
        GANNET_ASSIGN_OR_RETURN(std::string text, Capture(s.body));
        const Value input = Value::Str(std::move(text));
        GANNET_ASSIGN_OR_RETURN(const Value v, EvalFilter(*s.expr, &input));
        GANNET_RETURN_IF_ERROR(Located(s.line, s.column, Emit(ToStr(v))));
        return Flow::kNormal;
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kGeneration:
        return ExecList(s.body);
    }
    return Flow::kNormal;
  }

  Result<Flow> ExecFor(const Stmt& s) {
    GANNET_ASSIGN_OR_RETURN(const Value iterable, Eval(*s.expr));
    Result<List> items_or = Iterate(iterable);
    if (!items_or.ok()) return Fail(*s.expr, items_or.status());
    List items = std::move(items_or).value();
    if (s.cond) {  // `for x in xs if c`: filtered before loop.* is computed, as Jinja does
      List kept;
      for (const Value& item : items) {
        GANNET_RETURN_IF_ERROR(Located(s.line, s.column, budget_.LoopIteration()));
        scopes_.emplace_back();
        Status st = AssignTargets(s, s.targets, item);
        Result<Value> c = st.ok() ? Eval(*s.cond) : Result<Value>(st);
        scopes_.pop_back();
        if (!c.ok()) return c.status();
        if (c->Truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return ExecList(s.else_body);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      GANNET_RETURN_IF_ERROR(Located(s.line, s.column, budget_.LoopIteration()));
      Dict loop;
      loop.items = {
          {"index", Value::Int(i + 1)},
          {"index0", Value::Int(i)},
          {"revindex", Value::Int(n - i)},
          {"revindex0", Value::Int(n - i - 1)},
          {"first", Value::Bool(i == 0)},
          {"last", Value::Bool(i == n - 1)},
          {"length", Value::Int(n)},
          {"depth", Value::Int(1)},
          {"depth0", Value::Int(0)},
          {"previtem", i > 0 ? items[i - 1] : Value::Undefined("'loop.previtem' is undefined")},
          {"nextitem", i + 1 < n ? items[i + 1] : Value::Undefined("'loop.nextitem' is undefined")},
          {"cycle", Value::MakeCallable("cycle",
                                        [i](CallArgs& a) -> Result<Value> {
                                          if (a.args.empty())
                                            return Status::InvalidArgument(
                                                "no items for cycling given");
                                          return a.args[static_cast<size_t>(i) % a.args.size()];
                                        })},
      };
      scopes_.emplace_back();
      Assign("loop", Value::MakeDict(std::move(loop)));
      Status st = AssignTargets(s, s.targets, items[i]);
      Result<Flow> flow = st.ok() ? ExecList(s.body) : Result<Flow>(st);
      scopes_.pop_back();
      if (!flow.ok()) return flow.status();
      if (*flow == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  Result<Value> CallMacro(const Stmt& macro, CallArgs& a) {
    if (call_depth_ >= budget_.limits().max_call_depth) {
      return Status::ResourceExhausted("macro calls nested deeper than max_call_depth = " +
                                       std::to_string(budget_.limits().max_call_depth));
    }
    if (a.args.size() > macro.params.size()) {
      return Status::InvalidArgument("macro '" + macro.text + "' takes " +
                                     std::to_string(macro.params.size()) + " arguments, " +
                                     std::to_string(a.args.size()) + " given");
    }
    for (const auto& [k, v] : a.kwargs) {
      bool known = false;
      for (const auto& p : macro.params) known = known || p.first == k;
      if (!known)
        return Status::InvalidArgument("macro '" + macro.text + "' has no parameter '" + k + "'");
    }
    Scope frame;
    for (size_t i = 0; i < macro.params.size(); ++i) {
      const auto& [pname, dflt] = macro.params[i];
      if (const Value* given = a.Get(i, pname)) {
        frame[pname] = *given;
      } else if (dflt) {
        GANNET_ASSIGN_OR_RETURN(frame[pname], Eval(*dflt));
      } else {
        frame[pname] = Value::Undefined("'" + pname + "' is undefined");
      }
    }
    // A macro sees the template's top-level names and its parameters, not its caller's locals.
    std::vector<Scope> saved = std::move(scopes_);
    scopes_.clear();
    scopes_.push_back(saved.front());
    scopes_.push_back(std::move(frame));
    ++call_depth_;
    Result<std::string> text = Capture(macro.body);
    --call_depth_;
    saved.front() = std::move(scopes_.front());
    scopes_ = std::move(saved);
    if (!text.ok()) return text.status();
    return Value::Str(std::move(text).value());
  }

  // --- expressions --------------------------------------------------------------------------
  Result<CallArgs> EvalArgs(const Expr& e, size_t first) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) {
      GANNET_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i]));
      a.args.push_back(std::move(v));
    }
    for (const auto& [k, x] : e.kwargs) {
      GANNET_ASSIGN_OR_RETURN(Value v, Eval(*x));
      a.kwargs.emplace_back(k, std::move(v));
    }
    return a;
  }

  // Applies filter node `f` to its operand. In a {% filter a | b %} block the chain's innermost
  // operand is null and stands for `block_input`, the rendered body.
  Result<Value> EvalFilter(const Expr& f, const Value* block_input) {
    Value base;
    if (!f.args[0]) {
      base = *block_input;
    } else if (block_input) {
      GANNET_ASSIGN_OR_RETURN(base, EvalFilter(*f.args[0], block_input));
    } else {
      GANNET_ASSIGN_OR_RETURN(base, Eval(*f.args[0]));
    }
    GANNET_ASSIGN_OR_RETURN(CallArgs a, EvalArgs(f, 1));
    Result<Value> r = ApplyFilter(budget_, f.name, base, a);
    if (!r.ok()) return Fail(f, r.status());
    return r;
  }

  Result<Value> Eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.value;
      case ExprKind::kName: {
        const Value* v = Lookup(e.name);
        return v ? *v : Value::Undefined("'" + e.name + "' is undefined");
      }
      case ExprKind::kList:
      case ExprKind::kTuple: {
        List items;
        for (const auto& x : e.args) {
          GANNET_ASSIGN_OR_RETURN(Value v, Eval(*x));
          items.push_back(std::move(v));
        }
        return Value::MakeList(std::move(items), e.kind == ExprKind::kTuple);
      }
      case ExprKind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          GANNET_ASSIGN_OR_RETURN(const Value k, Eval(*e.args[i]));
          if (!k.is_string())
            return Fail(*e.args[i], "dict keys must be strings, not " + k.TypeName());
          GANNET_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i + 1]));
          bool replaced = false;
          for (auto& item : d.items) {
            if (item.first == k.str()) {
              item.second = v;
              replaced = true;
            }
          }
          if (!replaced) d.items.emplace_back(k.str(), std::move(v));
        }
        return Value::MakeDict(std::move(d));
      }
      case ExprKind::kAttr: {
        GANNET_ASSIGN_OR_RETURN(const Value obj, Eval(*e.args[0]));
        if (obj.is_undefined()) return Fail(e, UndefinedError(obj));
        return GetAttr(budget_, obj, e.name);
      }
      case ExprKind::kItem: {
        GANNET_ASSIGN_OR_RETURN(const Value obj, Eval(*e.args[0]));
        if (obj.is_undefined()) return Fail(e, UndefinedError(obj));
        GANNET_ASSIGN_OR_RETURN(const Value key, Eval(*e.args[1]));
        return GetItem(budget_, obj, key);
      }
      case ExprKind::kSlice: {
        GANNET_ASSIGN_OR_RETURN(const Value obj, Eval(*e.args[0]));
        if (obj.is_undefined()) return Fail(e, UndefinedError(obj));
        Value bounds[3];
        for (int i = 0; i < 3; ++i) {
          if (e.args[i + 1]) {
            GANNET_ASSIGN_OR_RETURN(bounds[i], Eval(*e.args[i + 1]));
          }
        }
        Result<Value> r =
            GetSlice(budget_, obj, e.args[1] ? &bounds[0] : nullptr,
                     e.args[2] ? &bounds[1] : nullptr, e.args[3] ? &bounds[2] : nullptr);
        if (!r.ok()) return Fail(e, r.status());
        return r;
      }
      case ExprKind::kCall: {
        GANNET_ASSIGN_OR_RETURN(const Value fn, Eval(*e.args[0]));
        if (fn.is_undefined()) return Fail(e, UndefinedError(fn));
        if (!fn.is_callable()) return Fail(e, "'" + fn.TypeName() + "' object is not callable");
        GANNET_ASSIGN_OR_RETURN(CallArgs a, EvalArgs(e, 1));
        Result<Value> r = fn.callable().fn(a);
        if (!r.ok()) return Fail(e, r.status());
        return r;
      }
      case ExprKind::kFilter:
        return EvalFilter(e, nullptr);
      case ExprKind::kTest: {
        GANNET_ASSIGN_OR_RETURN(const Value v, Eval(*e.args[0]));
        GANNET_ASSIGN_OR_RETURN(CallArgs a, EvalArgs(e, 1));
        Result<bool> r = ApplyTest(e.name, v, a, budget_.meter());
        if (!r.ok()) return Fail(e, r.status());
        return Value::Bool(*r != e.negated);
      }
      case ExprKind::kUnary:
        return EvalUnary(e);
      case ExprKind::kBinary:
        return EvalBinary(e);
      case ExprKind::kCompare:
        return EvalCompare(e);
      case ExprKind::kCond: {
        GANNET_ASSIGN_OR_RETURN(const Value c, Eval(*e.args[1]));
        if (c.Truthy()) return Eval(*e.args[0]);
        if (e.args[2]) return Eval(*e.args[2]);
        return Value::Undefined(
            "the inline if-expression evaluated to false and no else section was defined");
      }
    }
    return Fail(e, "unknown expression");
  }

  Result<Value> EvalUnary(const Expr& e) {
    GANNET_ASSIGN_OR_RETURN(const Value v, Eval(*e.args[0]));
    if (e.name == "not") return Value::Bool(!v.Truthy());
    if (v.is_undefined()) return Fail(e, UndefinedError(v));
    if (!v.is_number())
      return Fail(e, "bad operand type for unary " + e.name + ": '" + v.TypeName() + "'");
    if (e.name == "+") return v.is_float() ? v : Value::Int(v.int_value());
    if (v.is_float()) return Value::Float(-v.float_value());
    if (v.int_value() == std::numeric_limits<int64_t>::min()) return Fail(e, "integer overflow");
    return Value::Int(-v.int_value());
  }

  Result<Value> EvalBinary(const Expr& e) {
    GANNET_ASSIGN_OR_RETURN(const Value a, Eval(*e.args[0]));
    if (e.name == "and") return a.Truthy() ? Eval(*e.args[1]) : a;
    if (e.name == "or") return a.Truthy() ? a : Eval(*e.args[1]);
    GANNET_ASSIGN_OR_RETURN(const Value b, Eval(*e.args[1]));
    if (e.name == "~") {
      std::string s = ToStr(a, budget_.meter());
      const std::string t = ToStr(b, budget_.meter());
      GANNET_RETURN_IF_ERROR(Fail(e, budget_.String(s.size() + t.size())));
      return Value::Str(s + t);
    }
    if (a.is_undefined()) return Fail(e, UndefinedError(a));
    if (b.is_undefined()) return Fail(e, UndefinedError(b));
    Result<Value> r = Arith(e.name, a, b);
    if (!r.ok()) return Fail(e, r.status());
    return r;
  }

  Result<Value> Repeat(const Value& seq, int64_t times) {
    const size_t n = times < 0 ? 0 : static_cast<size_t>(times);
    // Nothing to repeat or no repeats: the empty result, however large the other operand.
    if (n == 0 || (seq.is_string() ? seq.str().empty() : seq.list().empty())) {
      return seq.is_string() ? Value::Str("") : Value::MakeList({}, seq.is_tuple());
    }
    if (seq.is_string()) {
      const size_t len = seq.str().size();
      if (n != 0 && len > budget_.limits().max_string_bytes / n + 1) {
        return budget_.String(budget_.limits().max_string_bytes + 1);
      }
      GANNET_RETURN_IF_ERROR(budget_.String(len * n));
      std::string out;
      out.reserve(len * n);
      for (size_t i = 0; i < n; ++i) out += seq.str();
      return Value::Str(std::move(out));
    }
    const size_t len = seq.list().size();
    if (n != 0 && len > budget_.limits().max_collection_size / n + 1) {
      return budget_.Collection(budget_.limits().max_collection_size + 1);
    }
    GANNET_RETURN_IF_ERROR(budget_.Collection(len * n));
    List out;
    for (size_t i = 0; i < n; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
    return Value::MakeList(std::move(out), seq.is_tuple());
  }

  Result<Value> Arith(const std::string& op, const Value& a, const Value& b) {
    const auto unsupported = [&] {
      return Status::InvalidArgument("unsupported operand type(s) for " + op + ": '" +
                                     a.TypeName() + "' and '" + b.TypeName() + "'");
    };
    if (op == "+" && a.is_string() && b.is_string()) {
      GANNET_RETURN_IF_ERROR(budget_.String(a.str().size() + b.str().size()));
      return Value::Str(a.str() + b.str());
    }
    if (op == "+" && a.is_list() && b.is_list()) {
      if (a.is_tuple() != b.is_tuple()) return unsupported();
      GANNET_RETURN_IF_ERROR(budget_.Collection(a.list().size() + b.list().size()));
      List out = a.list();
      out.insert(out.end(), b.list().begin(), b.list().end());
      return Value::MakeList(std::move(out), a.is_tuple());
    }
    if (op == "*" && (a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()))
      return Repeat(a, b.int_value());
    if (op == "*" && (b.is_string() || b.is_list()) && (a.is_int() || a.is_bool()))
      return Repeat(b, a.int_value());
    if (op == "%" && a.is_string())
      return Status::Unsupported("printf-style string formatting ('%') is not supported");
    if (!a.is_number() || !b.is_number()) return unsupported();
    if (a.is_float() || b.is_float() || op == "/") {
      const double x = a.AsDouble(), y = b.AsDouble();
      if (op == "+") return Value::Float(x + y);
      if (op == "-") return Value::Float(x - y);
      if (op == "*") return Value::Float(x * y);
      if (op == "**") return Value::Float(std::pow(x, y));
      if (y == 0) return Status::InvalidArgument("division by zero");
      if (op == "/") return Value::Float(x / y);
      if (op == "//") return Value::Float(std::floor(x / y));
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value::Float(m);
    }
    const int64_t x = a.int_value(), y = b.int_value();
    int64_t r = 0;
    const Status overflow = Status::OutOfRange("integer overflow in '" + op + "'");
    if (op == "+") {
      if (__builtin_add_overflow(x, y, &r)) return overflow;
    } else if (op == "-") {
      if (__builtin_sub_overflow(x, y, &r)) return overflow;
    } else if (op == "*") {
      if (__builtin_mul_overflow(x, y, &r)) return overflow;
    } else if (op == "**") {
      if (y < 0) return Value::Float(std::pow(static_cast<double>(x), static_cast<double>(y)));
      r = 1;
      for (int64_t i = 0; i < y; ++i) {
        if (__builtin_mul_overflow(r, x, &r)) return overflow;
        if (r == 0 || r == 1) break;
        if (r == -1) {
          r = ((y - i - 1) % 2 == 0) ? -1 : 1;
          break;
        }
      }
    } else {
      if (y == 0) return Status::InvalidArgument("integer division or modulo by zero");
      if (x == std::numeric_limits<int64_t>::min() && y == -1) return overflow;
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      r = op == "//" ? q : m;
    }
    return Value::Int(r);
  }

  Result<Value> EvalCompare(const Expr& e) {
    GANNET_ASSIGN_OR_RETURN(Value left, Eval(*e.args[0]));
    for (size_t i = 0; i < e.ops.size(); ++i) {
      GANNET_ASSIGN_OR_RETURN(Value right, Eval(*e.args[i + 1]));
      const std::string& op = e.ops[i];
      bool r = false;
      if (op == "==" || op == "!=") {
        r = Equals(left, right, budget_.meter()) == (op == "==");
        GANNET_RETURN_IF_ERROR(Fail(e, budget_.Work(0)));
      } else if (op == "in" || op == "notin") {
        Result<bool> c = Contains(right, left, budget_.meter());
        if (!c.ok()) return Fail(e, c.status());
        r = *c == (op == "in");
      } else {
        if (left.is_undefined()) return Fail(e, UndefinedError(left));
        if (right.is_undefined()) return Fail(e, UndefinedError(right));
        Result<bool> lt = op == "<" || op == ">=" ? Less(left, right, budget_.meter())
                                                  : Less(right, left, budget_.meter());
        if (!lt.ok())
          return Fail(e, Status::InvalidArgument("'" + op + "'" + lt.status().message().substr(3)));
        const bool strict = op == "<" || op == ">";
        r = strict ? *lt : !*lt;
      }
      if (!r) return Value::Bool(false);
      left = std::move(right);
    }
    return Value::Bool(true);
  }

  const Template& tmpl_;
  Budget budget_;
  std::vector<Scope> scopes_;
  std::string* out_ = nullptr;
  std::vector<Value> namespaces_;  // every namespace() made by this render
  int call_depth_ = 0;
};

}  // namespace

Result<std::string> Render(const Template& tmpl, const Dict& globals, const RenderLimits& limits) {
  return Interpreter(tmpl, globals, limits).Run();
}

}  // namespace gannet::jinja
