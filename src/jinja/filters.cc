// Jinja's filters and tests (jinja2/filters.py, jinja2/tests.py) used by chat templates, plus
// Hugging Face's tojson (json.dumps with ensure_ascii=False).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "jinja/interpreter.h"

namespace gannet::jinja {

namespace {

Status Error(std::string m) { return Status::InvalidArgument(std::move(m)); }

std::string AsciiCase(std::string s, bool upper) {
  for (char& c : s) {
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

Result<Value> CallStrMethod(Budget& b, const std::string& s, const char* method,
                            CallArgs args = {}) {
  const Value m = GetAttr(b, Value::Str(s), method);
  return m.callable().fn(args);
}

// Jinja's attribute getter: "a.b" looks up item a, then b; Undefined when missing.
Value AttrPath(Budget& b, const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (v.is_undefined()) return v;
    char* end = nullptr;
    const long long idx = std::strtoll(part.c_str(), &end, 10);
    v = (!part.empty() && *end == '\0') ? GetItem(b, v, Value::Int(idx))
                                        : GetItem(b, v, Value::Str(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Result<Value> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Value::Int(0);
    case Value::Kind::kString:
      return Value::Int(static_cast<int64_t>(CodePointCount(v.str())));
    case Value::Kind::kList:
      return Value::Int(static_cast<int64_t>(v.list().size()));
    case Value::Kind::kDict:
      return Value::Int(static_cast<int64_t>(v.dict().items.size()));
    default:
      return Error("object of type '" + v.TypeName() + "' has no len()");
  }
}

Result<Value> ToInt(const Value& v, const CallArgs& a) {
  const Value* dflt = a.Get(0, "default");
  const Value fallback = dflt ? *dflt : Value::Int(0);
  if (v.is_int() || v.is_bool()) return Value::Int(v.int_value());
  if (v.is_float()) {
    if (!std::isfinite(v.float_value()) || std::fabs(v.float_value()) > 9.2e18) return fallback;
    return Value::Int(static_cast<int64_t>(v.float_value()));
  }
  if (v.is_string()) {
    std::string s = v.str();
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    const char* p = s.c_str();
    while (*p == ' ' || *p == '\t' || *p == '\n') ++p;
    char* end = nullptr;
    errno = 0;
    const long long i = std::strtoll(p, &end, 10);
    const char* q = end;
    while (*q == ' ' || *q == '\t' || *q == '\n') ++q;
    if (end != p && *q == '\0' && errno == 0) return Value::Int(i);
    errno = 0;
    const double d = std::strtod(p, &end);  // Jinja tries float() next
    q = end;
    while (*q == ' ' || *q == '\t' || *q == '\n') ++q;
    if (end != p && *q == '\0' && errno == 0 && std::isfinite(d) && std::fabs(d) < 9.2e18) {
      return Value::Int(static_cast<int64_t>(d));
    }
  }
  return fallback;
}

Result<Value> ToFloat(const Value& v, const CallArgs& a) {
  const Value* dflt = a.Get(0, "default");
  const Value fallback = dflt ? *dflt : Value::Float(0.0);
  if (v.is_number()) return Value::Float(v.AsDouble());
  if (v.is_string()) {
    const char* p = v.str().c_str();
    char* end = nullptr;
    const double d = std::strtod(p, &end);
    while (*end == ' ' || *end == '\t' || *end == '\n') ++end;
    if (end != p && *end == '\0') return Value::Float(d);
  }
  return fallback;
}

Result<Value> SelectOrReject(Budget& b, const Value& v, CallArgs& a, bool by_attr, bool select) {
  GANNET_ASSIGN_OR_RETURN(const List items, Iterate(v));
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (a.args.empty() || !a.args[0].is_string())
      return Error("selectattr/rejectattr expect an attribute name");
    attr = a.args[0].str();
    next = 1;
  }
  std::string test;
  if (next < a.args.size()) {
    if (!a.args[next].is_string()) return Error("the test name must be a string");
    test = a.args[next].str();
    ++next;
  }
  CallArgs test_args;
  test_args.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(next), a.args.end());
  List out;
  for (const Value& item : items) {
    const Value x = by_attr ? AttrPath(b, item, attr) : item;
    bool r = x.Truthy();
    if (!test.empty()) {
      GANNET_ASSIGN_OR_RETURN(r, ApplyTest(test, x, test_args, b.meter()));
    }
    if (r == select) out.push_back(item);
  }
  return Value::MakeList(std::move(out));
}

Result<Value> Map(Budget& b, const Value& v, CallArgs& a) {
  GANNET_ASSIGN_OR_RETURN(const List items, Iterate(v));
  List out;
  if (const Value* attr = a.Get(99, "attribute")) {
    if (!attr->is_string()) return Error("map: attribute must be a string");
    const Value* dflt = a.Get(99, "default");
    for (const Value& item : items) {
      Value x = AttrPath(b, item, attr->str());
      if (x.is_undefined() && dflt) x = *dflt;
      out.push_back(std::move(x));
    }
    return Value::MakeList(std::move(out));
  }
  if (a.args.empty() || !a.args[0].is_string())
    return Error("map expects a filter name or attribute=");
  const std::string filter = a.args[0].str();
  CallArgs rest;
  rest.args.assign(a.args.begin() + 1, a.args.end());
  rest.kwargs = a.kwargs;
  for (const Value& item : items) {
    GANNET_ASSIGN_OR_RETURN(Value x, ApplyFilter(b, filter, item, rest));
    out.push_back(std::move(x));
  }
  return Value::MakeList(std::move(out));
}

Result<Value> Join(Budget& b, const Value& v, CallArgs& a) {
  GANNET_ASSIGN_OR_RETURN(const List items, Iterate(v));
  const Value* sep = a.Get(0, "d");
  const Value* attr = a.Get(1, "attribute");
  const std::string d = sep ? ToStr(*sep, b.meter()) : "";
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += d;
    out +=
        ToStr(attr && attr->is_string() ? AttrPath(b, items[i], attr->str()) : items[i], b.meter());
    GANNET_RETURN_IF_ERROR(b.String(out.size()));
  }
  return Value::Str(std::move(out));
}

Result<Value> Sort(Budget& b, const Value& v, CallArgs& a, bool unique) {
  GANNET_ASSIGN_OR_RETURN(List items, Iterate(v));
  const Value* reverse = a.Get(unique ? 99 : 0, "reverse");
  const Value* case_sensitive = a.Get(unique ? 0 : 1, "case_sensitive");
  const Value* attr = a.Get(unique ? 1 : 2, "attribute");
  const bool cs = case_sensitive && case_sensitive->Truthy();
  // Each item's key once (lower-casing a string is charged by its length).
  List keys;
  keys.reserve(items.size());
  for (const Value& x : items) {
    Value k = attr && attr->is_string() ? AttrPath(b, x, attr->str()) : x;
    if (!cs && k.is_string()) {
      GANNET_RETURN_IF_ERROR(b.Work(k.str().size()));
      k = Value::Str(AsciiCase(k.str(), false));
    }
    keys.push_back(std::move(k));
  }
  if (unique) {
    List out;
    List seen;
    for (size_t i = 0; i < items.size(); ++i) {
      const bool is_new = std::none_of(
          seen.begin(), seen.end(), [&](const Value& s) { return Equals(s, keys[i], b.meter()); });
      GANNET_RETURN_IF_ERROR(b.Work(0));
      if (is_new) {
        seen.push_back(keys[i]);
        out.push_back(items[i]);
      }
    }
    return Value::MakeList(std::move(out));
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Status st;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    if (!st.ok()) return false;  // failed: finish the sort without more work
    Result<bool> lt = Less(keys[x], keys[y], b.meter());
    if (!lt.ok()) {
      st = lt.status();
      return false;
    }
    return *lt;
  });
  GANNET_RETURN_IF_ERROR(st);
  List sorted;
  sorted.reserve(items.size());
  for (const size_t i : order) sorted.push_back(items[i]);
  items = std::move(sorted);
  if (reverse && reverse->Truthy()) std::reverse(items.begin(), items.end());
  return Value::MakeList(std::move(items));
}

}  // namespace

// The filters that work on the value's text (str(v) for a value that is not a string).
bool IsTextFilter(std::string_view name) {
  static constexpr std::string_view kNames[] = {"trim",        "upper",     "lower",   "capitalize",
                                                "title",       "string",    "e",       "escape",
                                                "forceescape", "wordcount", "replace", "indent"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

Result<Value> ApplyFilter(Budget& b, std::string_view name, const Value& v, CallArgs& a) {
  // Only the text filters pay for str(v), metered: a list of a million references to one long
  // string is cheap to hold and to take the length of, not to print.
  std::string s;
  if (v.is_string()) {
    s = v.str();
  } else if (IsTextFilter(name)) {
    s = ToStr(v, b.meter());
    GANNET_RETURN_IF_ERROR(b.String(s.size()));
  }
  if (name == "trim") {
    CallArgs m;
    if (const Value* chars = a.Get(0, "chars")) m.args.push_back(*chars);
    return CallStrMethod(b, s, "strip", m);
  }
  if (name == "upper") return Value::Str(AsciiCase(s, true));
  if (name == "lower") return Value::Str(AsciiCase(s, false));
  if (name == "capitalize") return CallStrMethod(b, s, "capitalize");
  if (name == "title") return CallStrMethod(b, s, "title");
  if (name == "string") return Value::Str(s);
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v;
    std::string out;
    for (const char c : s) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&#34;";
          break;
        case '\'':
          out += "&#39;";
          break;
        default:
          out += c;
      }
    }
    GANNET_RETURN_IF_ERROR(b.String(out.size()));
    return Value::Str(std::move(out));
  }
  if (name == "length" || name == "count") return Length(v);
  if (name == "wordcount") {
    GANNET_ASSIGN_OR_RETURN(const Value words, CallStrMethod(b, s, "split"));
    return Value::Int(static_cast<int64_t>(words.list().size()));
  }
  if (name == "tojson") {
    JsonOptions o;
    if (const Value* indent = a.Get(1, "indent"); indent && !indent->is_none()) {
      if (!indent->is_int() || indent->int_value() < 0 || indent->int_value() > 64) {
        return Error("tojson: indent must be an integer in [0, 64]");
      }
      o.indent = static_cast<int>(indent->int_value());
    }
    if (const Value* sk = a.Get(3, "sort_keys")) o.sort_keys = sk->Truthy();
    if (const Value* sep = a.Get(2, "separators"); sep && !sep->is_none()) {
      return Error("tojson: separators is not supported");
    }
    o.meter = b.meter();
    GANNET_ASSIGN_OR_RETURN(std::string json, ToJson(v, o));
    GANNET_RETURN_IF_ERROR(b.String(json.size()));
    return Value::Str(std::move(json));
  }
  if (name == "join") return Join(b, v, a);
  if (name == "default" || name == "d") {
    const Value* dflt = a.Get(0, "default_value");
    const Value* boolean = a.Get(1, "boolean");
    const bool use = v.is_undefined() || (boolean && boolean->Truthy() && !v.Truthy());
    return use ? (dflt ? *dflt : Value::Str("")) : v;
  }
  if (name == "first" || name == "last") {
    GANNET_ASSIGN_OR_RETURN(const List items, Iterate(v));
    if (items.empty())
      return Value::Undefined("No " + std::string(name) + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") {
    GANNET_ASSIGN_OR_RETURN(List items, Iterate(v));
    return Value::MakeList(std::move(items));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::MakeList({});
    if (!v.is_dict())
      return Error("items: can only get item pairs from a mapping, not " + v.TypeName());
    List out;
    for (const auto& [k, x] : v.dict().items)
      out.push_back(Value::MakeList({Value::Str(k), x}, true));
    return Value::MakeList(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is_dict()) return Error("dictsort: expected a mapping, not " + v.TypeName());
    List out;
    for (const auto& [k, x] : v.dict().items)
      out.push_back(Value::MakeList({Value::Str(k), x}, true));
    std::stable_sort(out.begin(), out.end(), [](const Value& x, const Value& y) {
      return AsciiCase(x.list()[0].str(), false) < AsciiCase(y.list()[0].str(), false);
    });
    return Value::MakeList(std::move(out));
  }
  if (name == "int") return ToInt(v, a);
  if (name == "float") return ToFloat(v, a);
  if (name == "abs") {
    if (v.is_float()) return Value::Float(std::fabs(v.float_value()));
    if (v.is_int() || v.is_bool()) {
      if (v.int_value() == INT64_MIN) return Error("integer overflow in abs");
      return Value::Int(v.int_value() < 0 ? -v.int_value() : v.int_value());
    }
    return Error("bad operand type for abs(): '" + v.TypeName() + "'");
  }
  if (name == "round") {
    if (!v.is_number()) return Error("round: expected a number, not " + v.TypeName());
    const Value* prec = a.Get(0, "precision");
    const Value* method = a.Get(1, "method");
    const double p =
        std::pow(10.0, prec && prec->is_int() ? static_cast<double>(prec->int_value()) : 0.0);
    const std::string m = method && method->is_string() ? method->str() : "common";
    const double x = v.AsDouble() * p;
    const double r = m == "floor" ? std::floor(x) : m == "ceil" ? std::ceil(x) : std::round(x);
    return Value::Float(r / p);
  }
  if (name == "replace") {
    CallArgs m;
    for (const Value& x : a.args) m.args.push_back(x);
    return CallStrMethod(b, s, "replace", m);
  }
  if (name == "selectattr" || name == "rejectattr")
    return SelectOrReject(b, v, a, true, name == "selectattr");
  if (name == "select" || name == "reject") return SelectOrReject(b, v, a, false, name == "select");
  if (name == "map") return Map(b, v, a);
  if (name == "reverse") {
    const Value step = Value::Int(-1);
    if (v.is_string()) return GetSlice(b, v, nullptr, nullptr, &step);
    GANNET_ASSIGN_OR_RETURN(List items, Iterate(v));
    std::reverse(items.begin(), items.end());
    return Value::MakeList(std::move(items));
  }
  if (name == "sort") return Sort(b, v, a, false);
  if (name == "unique") return Sort(b, v, a, true);
  if (name == "min" || name == "max" || name == "sum") {
    GANNET_ASSIGN_OR_RETURN(const List items, Iterate(v));
    if (name == "sum") {
      double fsum = 0;
      int64_t isum = 0;
      bool is_float = false;
      for (const Value& x : items) {
        if (!x.is_number()) return Error("sum: unsupported operand type '" + x.TypeName() + "'");
        if (x.is_float()) is_float = true;
        fsum += x.AsDouble();
        if (!x.is_float() && __builtin_add_overflow(isum, x.int_value(), &isum))
          return Error("integer overflow in sum");
      }
      return is_float ? Value::Float(fsum) : Value::Int(isum);
    }
    if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
    Value best = items[0];
    for (const Value& x : items) {
      GANNET_ASSIGN_OR_RETURN(const bool lt, Less(x, best, b.meter()));
      if (lt == (name == "min")) best = x;
    }
    return best;
  }
  if (name == "indent") {
    const Value* width = a.Get(0, "width");
    const Value* first = a.Get(1, "first");
    const Value* blank = a.Get(2, "blank");
    const std::string pad =
        width && width->is_string()
            ? width->str()
            : std::string(
                  width && width->is_int() ? std::clamp<int64_t>(width->int_value(), 0, 256) : 4,
                  ' ');
    std::string out;
    size_t start = 0;
    bool first_line = true;
    while (start <= s.size()) {
      const size_t nl = s.find('\n', start);
      const std::string line =
          s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      const bool indent_it =
          first_line ? (first && first->Truthy()) : (!line.empty() || (blank && blank->Truthy()));
      if (indent_it) out += pad;
      out += line;
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
      first_line = false;
    }
    GANNET_RETURN_IF_ERROR(b.String(out.size()));
    return Value::Str(std::move(out));
  }
  return Error("no filter named '" + std::string(name) + "'");
}

Result<bool> ApplyTest(std::string_view name, const Value& v, CallArgs& a, WorkMeter* meter) {
  const Value* arg = a.Get(0, "other");
  auto need_arg = [&]() -> Status {
    return arg ? Status::Ok() : Error("test '" + std::string(name) + "' needs an argument");
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.bool_value();
  if (name == "false") return v.is_bool() && !v.bool_value();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    return v.str() == AsciiCase(v.str(), name == "upper") &&
           v.str() != AsciiCase(v.str(), name != "upper");
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool())
      return Error("test '" + std::string(name) + "' expects an integer");
    if (name == "divisibleby") {
      GANNET_RETURN_IF_ERROR(need_arg());
      if (!arg->is_int() || arg->int_value() == 0)
        return Error("divisibleby expects a non-zero integer");
      return v.int_value() % arg->int_value() == 0;
    }
    return (v.int_value() % 2 != 0) == (name == "odd");
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") {
    GANNET_RETURN_IF_ERROR(need_arg());
    const bool eq = Equals(v, *arg, meter);
    if (meter != nullptr && meter->exhausted()) return WorkExhausted();
    return eq;
  }
  if (name == "ne" || name == "!=") {
    GANNET_RETURN_IF_ERROR(need_arg());
    const bool eq = Equals(v, *arg, meter);
    if (meter != nullptr && meter->exhausted()) return WorkExhausted();
    return !eq;
  }
  if (name == "lt" || name == "lessthan" || name == "<" || name == "ge" || name == ">=") {
    GANNET_RETURN_IF_ERROR(need_arg());
    GANNET_ASSIGN_OR_RETURN(const bool lt, Less(v, *arg, meter));
    return (name == "lt" || name == "lessthan" || name == "<") ? lt : !lt;
  }
  if (name == "gt" || name == "greaterthan" || name == ">" || name == "le" || name == "<=") {
    GANNET_RETURN_IF_ERROR(need_arg());
    GANNET_ASSIGN_OR_RETURN(const bool gt, Less(*arg, v, meter));
    return (name == "gt" || name == "greaterthan" || name == ">") ? gt : !gt;
  }
  if (name == "in") {
    GANNET_RETURN_IF_ERROR(need_arg());
    return Contains(*arg, v, meter);
  }
  return Error("no test named '" + std::string(name) + "'");
}

}  // namespace gannet::jinja
