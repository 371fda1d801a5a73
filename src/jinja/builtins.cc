// Filters, tests, attribute/item access and the str/dict/list methods chat templates call, with
// Python's semantics (jinja2/filters.py, jinja2/tests.py, Python's str methods). Case mapping is
// ASCII-only (Python maps all of Unicode); templates apply it to role names and keywords.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "base/utf8.h"
#include "jinja/interpreter.h"

namespace gannet::jinja {

namespace {

Status Error(std::string m) { return Status::InvalidArgument(std::move(m)); }

// 'text' (appending: GCC 12 -Wrestrict warns falsely on "'" + std::string).
std::string Quote(const std::string& text) {
  std::string q(1, '\'');
  q += text;
  q += '\'';
  return q;
}

bool PySpace(char32_t c) { return (c >= 0x1C && c <= 0x1F) || unicode::IsWhitespace(c); }

std::string AsciiLower(std::string s) {
  for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return s;
}
std::string AsciiUpper(std::string s) {
  for (char& c : s) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  return s;
}
bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string Title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    if (IsAsciiAlpha(c)) {
      c = prev_cased ? AsciiLower(std::string(1, c))[0] : AsciiUpper(std::string(1, c))[0];
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  return out;
}

// str.strip / lstrip / rstrip; `chars` null: whitespace.
std::string Strip(const std::string& s, const Value* chars, bool left, bool right) {
  std::u32string cps = DecodeUtf8(s);
  std::u32string set;
  const bool ws = chars == nullptr || chars->is_none() || !chars->is_string();
  if (!ws) set = DecodeUtf8(chars->str());
  auto strip_it = [&](char32_t c) { return ws ? PySpace(c) : set.find(c) != std::u32string::npos; };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  return EncodeUtf8(std::u32string_view(cps).substr(b, e - b));
}

Result<List> Split(const std::string& s, const Value* sep, const Value* maxsplit_v) {
  int64_t maxsplit = -1;
  if (maxsplit_v && maxsplit_v->is_int()) maxsplit = maxsplit_v->int_value();
  List out;
  if (sep == nullptr || sep->is_none()) {
    const std::u32string cps = DecodeUtf8(s);
    size_t i = 0;
    while (true) {
      while (i < cps.size() && PySpace(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = cps.size();
        while (e > i && PySpace(cps[e - 1])) --e;
        out.push_back(Value::Str(EncodeUtf8(std::u32string_view(cps).substr(i, e - i))));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !PySpace(cps[j])) ++j;
      out.push_back(Value::Str(EncodeUtf8(std::u32string_view(cps).substr(i, j - i))));
      i = j;
    }
    return out;
  }
  if (!sep->is_string()) return Error("must be str or None, not " + sep->TypeName());
  const std::string& d = sep->str();
  if (d.empty()) return Error("empty separator");
  size_t start = 0;
  while (true) {
    const size_t p = (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit)
                         ? std::string::npos
                         : FindText(s, d, start);
    if (p == std::string::npos) {
      out.push_back(Value::Str(s.substr(start)));
      return out;
    }
    out.push_back(Value::Str(s.substr(start, p - start)));
    start = p + d.size();
  }
}

// Stops once the result passes max_bytes (the caller reports it as too long).
std::string Replace(const std::string& s, const std::string& from, const std::string& to,
                    int64_t count, size_t max_bytes) {
  std::string out;
  size_t start = 0;
  int64_t done = 0;
  if (from.empty()) {  // Python inserts `to` between every character
    const std::u32string cps = DecodeUtf8(s);
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < cps.size()) out += EncodeUtf8(std::u32string_view(cps).substr(i, 1));
      if (out.size() > max_bytes) break;
    }
    return out;
  }
  while (count < 0 || done < count) {
    const size_t p = FindText(s, from, start);
    if (p == std::string::npos) break;
    out.append(s, start, p - start);
    out += to;
    if (out.size() > max_bytes) return out;
    start = p + from.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

Result<bool> AffixMatch(const std::string& s, const Value& arg, bool prefix) {
  auto one = [&](const Value& v) -> Result<bool> {
    if (!v.is_string())
      return Error(std::string(prefix ? "startswith" : "endswith") +
                   " first arg must be str or a tuple of str");
    const std::string& a = v.str();
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0
                  : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (arg.is_tuple()) {
    for (const Value& v : arg.list()) {
      GANNET_ASSIGN_OR_RETURN(const bool m, one(v));
      if (m) return true;
    }
    return false;
  }
  return one(arg);
}

Status Arity(const CallArgs& a, size_t max, std::string_view name) {
  if (a.args.size() > max) {
    return Error(std::string(name) + "() takes at most " + std::to_string(max) + " arguments (" +
                 std::to_string(a.args.size()) + " given)");
  }
  return Status::Ok();
}

Result<Value> StrMethod(Budget& budget, const std::string& s, const std::string& name,
                        CallArgs& a) {
  const Value* a0 = a.Get(0, "");
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    GANNET_RETURN_IF_ERROR(Arity(a, 1, name));
    return Value::Str(Strip(s, a0, name != "rstrip", name != "lstrip"));
  }
  if (name == "upper") return Value::Str(AsciiUpper(s));
  if (name == "lower") return Value::Str(AsciiLower(s));
  if (name == "title") return Value::Str(Title(s));
  if (name == "capitalize")
    return Value::Str(s.empty() ? s : AsciiUpper(s.substr(0, 1)) + AsciiLower(s.substr(1)));
  if (name == "startswith" || name == "endswith") {
    if (a0 == nullptr) return Error(name + "() takes at least 1 argument (0 given)");
    GANNET_ASSIGN_OR_RETURN(const bool m, AffixMatch(s, *a0, name == "startswith"));
    return Value::Bool(m);
  }
  if (name == "split") {
    GANNET_ASSIGN_OR_RETURN(List parts, Split(s, a.Get(0, "sep"), a.Get(1, "maxsplit")));
    GANNET_RETURN_IF_ERROR(budget.Collection(parts.size()));
    return Value::MakeList(std::move(parts));
  }
  if (name == "splitlines") {
    List parts;
    size_t start = 0;
    while (start < s.size()) {
      const size_t p = s.find('\n', start);
      if (p == std::string::npos) {
        parts.push_back(Value::Str(s.substr(start)));
        break;
      }
      parts.push_back(Value::Str(s.substr(start, p - start)));
      start = p + 1;
    }
    return Value::MakeList(std::move(parts));
  }
  if (name == "replace") {
    const Value* from = a.Get(0, "old");
    const Value* to = a.Get(1, "new");
    const Value* count = a.Get(2, "count");
    if (!from || !to || !from->is_string() || !to->is_string())
      return Error("replace() expects two strings");
    const std::string r =
        Replace(s, from->str(), to->str(), count && count->is_int() ? count->int_value() : -1,
                budget.limits().max_string_bytes);
    GANNET_RETURN_IF_ERROR(budget.String(r.size()));
    return Value::Str(r);
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    if (!a0 || !a0->is_string()) return Error(name + "() expects a string");
    const std::string& sub = a0->str();
    if (name == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CodePointCount(s) + 1));
      int64_t n = 0;
      for (size_t p = FindText(s, sub); p != std::string::npos;
           p = FindText(s, sub, p + sub.size()))
        ++n;
      return Value::Int(n);
    }
    const size_t p = name == "rfind" ? RFindText(s, sub) : FindText(s, sub);
    if (p == std::string::npos) {
      if (name == "index") return Error("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(static_cast<int64_t>(CodePointCount(std::string_view(s).substr(0, p))));
  }
  if (name == "join") {
    if (!a0) return Error("join() takes exactly one argument");
    GANNET_ASSIGN_OR_RETURN(const List items, Iterate(*a0));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        return Error("sequence item " + std::to_string(i) + ": expected str instance");
      if (i) out += s;
      out += items[i].str();
      GANNET_RETURN_IF_ERROR(budget.String(out.size()));
    }
    return Value::Str(std::move(out));
  }
  auto all_of = [&](auto pred) {
    if (s.empty()) return Value::Bool(false);
    return Value::Bool(std::all_of(s.begin(), s.end(), pred));
  };
  if (name == "isdigit") return all_of([](char c) { return c >= '0' && c <= '9'; });
  if (name == "isalpha") return all_of([](char c) { return IsAsciiAlpha(c); });
  if (name == "isalnum")
    return all_of([](char c) { return IsAsciiAlpha(c) || (c >= '0' && c <= '9'); });
  if (name == "isspace") return all_of([](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
  if (name == "islower") return Value::Bool(s == AsciiLower(s) && s != AsciiUpper(s));
  if (name == "isupper") return Value::Bool(s == AsciiUpper(s) && s != AsciiLower(s));
  return Error("'str' object has no attribute '" + name + "'");
}

bool IsStrMethod(const std::string& n) {
  static const char* const kNames[] = {
      "strip",      "lstrip",     "rstrip",   "upper",   "lower",      "title",
      "capitalize", "startswith", "endswith", "split",   "splitlines", "replace",
      "find",       "rfind",      "count",    "index",   "join",       "isdigit",
      "isalpha",    "isalnum",    "isspace",  "islower", "isupper"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

Value Tuple2(Value a, Value b) { return Value::MakeList({std::move(a), std::move(b)}, true); }

Result<Value> DictMethod(const Dict& d, const std::string& name, CallArgs& a) {
  if (name == "get") {
    const Value* key = a.Get(0, "key");
    if (!key) return Error("get expected at least 1 argument, got 0");
    const Value* dflt = a.Get(1, "default");
    if (key->is_string()) {
      if (const Value* v = d.Find(key->str())) return *v;
    }
    return dflt ? *dflt : Value::None();
  }
  List out;
  for (const auto& [k, v] : d.items) {
    if (name == "items") out.push_back(Tuple2(Value::Str(k), v));
    if (name == "keys") out.push_back(Value::Str(k));
    if (name == "values") out.push_back(v);
  }
  return Value::MakeList(std::move(out));
}

Result<Value> ListMethod(const List& l, const std::string& name, CallArgs& a, WorkMeter* meter) {
  const Value* x = a.Get(0, "value");
  if (!x) return Error(name + "() takes exactly one argument");
  int64_t n = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    const bool eq = Equals(l[i], *x, meter);
    if (meter->exhausted()) return WorkExhausted();
    if (!eq) continue;
    if (name == "index") return Value::Int(static_cast<int64_t>(i));
    ++n;
  }
  if (name == "index") return Error(Repr(*x) + " is not in list");
  return Value::Int(n);
}

Result<int64_t> ToIndex(const Value& v) {
  if (v.is_int() || v.is_bool()) return v.int_value();
  if (v.is_none()) return Error("slice bound is None");
  return Error("indices must be integers, not " + v.TypeName());
}

// "'T object' has no attribute A" (built by appending: GCC 12 warns falsely on "'" + string).
std::string NoAttribute(const Value& obj, const std::string& attr) {
  std::string m = "'";
  m += obj.TypeName();
  m += " object' has no attribute ";
  m += attr;
  return m;
}

}  // namespace

Result<List> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return List{};
    case Value::Kind::kList:
      return v.list();
    case Value::Kind::kDict: {
      List keys;
      for (const auto& kv : v.dict().items) keys.push_back(Value::Str(kv.first));
      return keys;
    }
    case Value::Kind::kString: {
      List chars;
      for (const char32_t c : DecodeUtf8(v.str()))
        chars.push_back(Value::Str(EncodeUtf8(std::u32string(1, c))));
      return chars;
    }
    default:
      return Error(Quote(v.TypeName()) + " object is not iterable");
  }
}

Value GetAttr(Budget& budget, const Value& obj, const std::string& name) {
  const auto bind = [&](auto method) {
    Budget* b = &budget;
    return Value::MakeCallable(
        name, [obj, name, method, b](CallArgs& a) { return method(*b, obj, name, a); });
  };
  switch (obj.kind()) {
    case Value::Kind::kDict:
      if (name == "get" || name == "items" || name == "keys" || name == "values") {
        return bind([](Budget&, const Value& o, const std::string& n, CallArgs& a) {
          return DictMethod(o.dict(), n, a);
        });
      }
      if (const Value* v = obj.dict().Find(name)) return *v;
      return Value::Undefined("'dict object' has no attribute '" + name + "'");
    case Value::Kind::kNamespace:
      if (const Value* v = obj.ns().attrs.Find(name)) return *v;
      return Value::Undefined("'Namespace' object has no attribute '" + name + "'");
    case Value::Kind::kString:
      if (IsStrMethod(name)) {
        return bind([](Budget& b, const Value& o, const std::string& n, CallArgs& a) {
          return StrMethod(b, o.str(), n, a);
        });
      }
      break;
    case Value::Kind::kList:
      if (name == "index" || name == "count") {
        return bind([](Budget& b, const Value& o, const std::string& n, CallArgs& a) {
          return ListMethod(o.list(), n, a, b.meter());
        });
      }
      break;
    default:
      break;
  }
  std::string quoted(1, '\'');
  quoted += name;
  quoted += '\'';
  return Value::Undefined(NoAttribute(obj, quoted));
}

Value GetItem(Budget& budget, const Value& obj, const Value& key) {
  if (obj.is_dict()) {
    if (key.is_string()) {
      if (const Value* v = obj.dict().Find(key.str())) return *v;
      return Value::Undefined("'dict object' has no attribute '" + key.str() + "'");
    }
    return Value::Undefined("'dict object' has no attribute " + Repr(key));
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.int_value();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.list()[static_cast<size_t>(i)];
    } else {
      const std::u32string cps = DecodeUtf8(obj.str());
      const int64_t n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n)
        return Value::Str(EncodeUtf8(std::u32string(1, cps[static_cast<size_t>(i)])));
    }
    return Value::Undefined(obj.TypeName() + " object has no element " +
                            std::to_string(key.int_value()));
  }
  if (key.is_string()) return GetAttr(budget, obj, key.str());  // Jinja falls back to getattr
  return Value::Undefined(NoAttribute(obj, Repr(key)));
}

Result<Value> GetSlice(Budget& budget, const Value& obj, const Value* start_v, const Value* stop_v,
                       const Value* step_v) {
  if (!obj.is_list() && !obj.is_string())
    return Error(Quote(obj.TypeName()) + " object is not subscriptable");
  int64_t step = 1;
  if (step_v && !step_v->is_none()) {
    GANNET_ASSIGN_OR_RETURN(step, ToIndex(*step_v));
  }
  if (step == 0) return Error("slice step cannot be zero");
  std::u32string cps;
  if (obj.is_string()) cps = DecodeUtf8(obj.str());
  const int64_t n =
      obj.is_string() ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(obj.list().size());
  // Python's slice.indices().
  auto bound = [&](const Value* v, int64_t dflt) -> Result<int64_t> {
    if (!v || v->is_none()) return dflt;
    GANNET_ASSIGN_OR_RETURN(int64_t i, ToIndex(*v));
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  GANNET_ASSIGN_OR_RETURN(const int64_t start, bound(start_v, step < 0 ? n - 1 : 0));
  GANNET_ASSIGN_OR_RETURN(const int64_t stop, bound(stop_v, step < 0 ? -1 : n));
  std::vector<size_t> picked;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
    picked.push_back(static_cast<size_t>(i));
  GANNET_RETURN_IF_ERROR(budget.Work(picked.size()));
  if (obj.is_string()) {
    std::u32string out;
    for (const size_t i : picked) out += cps[i];
    return Value::Str(EncodeUtf8(out));
  }
  List out;
  for (const size_t i : picked) out.push_back(obj.list()[i]);
  return Value::MakeList(std::move(out), obj.is_tuple());
}

Result<bool> Contains(const Value& container, const Value& item, WorkMeter* meter) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string())
        return Error("'in <string>' requires string as left operand, not " + item.TypeName());
      if (!meter->Charge(1 + container.str().size())) return WorkExhausted();
      return FindText(container.str(), item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.list()) {
        if (Equals(v, item, meter)) return true;
        if (meter->exhausted()) return WorkExhausted();
      }
      return false;
    case Value::Kind::kDict:
      return item.is_string() && container.dict().Find(item.str()) != nullptr;
    case Value::Kind::kNamespace:
      return item.is_string() && container.ns().attrs.Find(item.str()) != nullptr;
    case Value::Kind::kUndefined:
      return false;
    default:
      return Error("argument of type '" + container.TypeName() + "' is not iterable");
  }
}

}  // namespace gannet::jinja
