// Python's str/repr/json.dumps/==/< for the interpreter's values, so that rendering matches
// Jinja under Python byte for byte.
#include "jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "base/utf8.h"

namespace gannet::jinja {

const Value* Dict::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value Value::Undefined(std::string hint) {
  Value v;
  v.s_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}
Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.i_ = b ? 1 : 0;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}
Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}
Value Value::Str(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}
Value Value::MakeList(List items, bool tuple) {
  Value v;
  v.kind_ = Kind::kList;
  v.tuple_ = tuple;
  for (const Value& e : items) v.depth_ = std::max(v.depth_, e.depth_ + 1);
  if (items.empty()) v.depth_ = 1;
  v.list_ = std::make_shared<const List>(std::move(items));
  return v;
}
Value Value::MakeDict(Dict dict) {
  Value v;
  v.kind_ = Kind::kDict;
  v.depth_ = 1;
  for (const auto& kv : dict.items) v.depth_ = std::max(v.depth_, kv.second.depth_ + 1);
  v.dict_ = std::make_shared<const Dict>(std::move(dict));
  return v;
}
Value Value::MakeNamespace(Dict attrs) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.ns_ = std::make_shared<Namespace>(Namespace{std::move(attrs)});
  return v;
}
Value Value::MakeCallable(std::string name, std::function<Result<Value>(CallArgs&)> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.fn_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

const std::string& Value::undefined_hint() const {
  static const std::string kEmpty;
  return s_ ? *s_ : kEmpty;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0;
    case Kind::kString:
      return !s_->empty();
    case Kind::kList:
      return !list_->empty();
    case Kind::kDict:
      return !dict_->items.empty();
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return tuple_ ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "?";
}

const Value* CallArgs::Get(size_t pos, std::string_view name) const {
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return pos < args.size() ? &args[pos] : nullptr;
}

std::u32string DecodeUtf8(std::string_view s) {
  const std::vector<uint32_t> cps = unicode::DecodeLenient(s);
  return std::u32string(cps.begin(), cps.end());
}

std::string EncodeUtf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char32_t c : s) unicode::AppendUtf8(c, &out);
  return out;
}

size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (const char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: positional when -4 <= exponent < 16.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e_pos = sci.find('e');
  const int exp = std::stoi(sci.substr(e_pos + 1));
  std::string digits = sci.substr(0, e_pos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  if (exp >= -4 && exp < 16) {
    std::string out;
    if (exp < 0) {
      out = "0." + std::string(-exp - 1, '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
    return sign + out;
  }
  std::string mant = digits.substr(0, 1);
  if (digits.size() > 1) mant += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return sign + mant + ebuf;
}

namespace {

bool PythonPrintable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if (c == 0x2028 || c == 0x2029 || (c >= 0xD800 && c <= 0xDFFF) || c == 0xFEFF) return false;
  return true;
}

std::string StrRepr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (const char32_t c : DecodeUtf8(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!PythonPrintable(c)) {
      if (c < 0x100) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      }
      out += buf;
    } else {
      unicode::AppendUtf8(c, &out);
    }
  }
  out += quote;
  return out;
}

void JsonString(const std::string& s, std::string* out) {
  *out += '"';
  char buf[8];
  for (const char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          *out += buf;
        } else {
          *out += c;
        }
    }
  }
  *out += '"';
}

Status JsonValue(const Value& v, const JsonOptions& o, int level, std::string* out) {
  if (level > 256) return Status::OutOfRange("tojson: value nested too deeply");
  if (o.meter != nullptr) {
    if (!o.meter->Charge(1 + (v.is_string() ? v.str().size() : 0))) {
      return Status::ResourceExhausted("tojson: the template exceeded its work limit");
    }
    if (out->size() > o.meter->max_bytes()) {
      return Status::ResourceExhausted("tojson: output longer than " +
                                       std::to_string(o.meter->max_bytes()) + " bytes");
    }
  }
  auto newline = [&](int lvl) {
    if (o.indent >= 0) {
      *out += '\n';
      out->append(static_cast<size_t>(o.indent) * lvl, ' ');
    }
  };
  const char* item_sep = o.indent >= 0 ? "," : ", ";
  switch (v.kind()) {
    case Value::Kind::kNone:
      *out += "null";
      return Status::Ok();
    case Value::Kind::kBool:
      *out += v.bool_value() ? "true" : "false";
      return Status::Ok();
    case Value::Kind::kInt:
      *out += std::to_string(v.int_value());
      return Status::Ok();
    case Value::Kind::kFloat: {
      const double d = v.float_value();
      if (std::isnan(d)) {
        *out += "NaN";
      } else if (std::isinf(d)) {
        *out += d < 0 ? "-Infinity" : "Infinity";
      } else {
        *out += FloatRepr(d);
      }
      return Status::Ok();
    }
    case Value::Kind::kString:
      JsonString(v.str(), out);
      return Status::Ok();
    case Value::Kind::kList: {
      if (v.list().empty()) {
        *out += "[]";
        return Status::Ok();
      }
      *out += '[';
      bool first = true;
      for (const Value& e : v.list()) {
        if (!first) *out += item_sep;
        first = false;
        newline(level + 1);
        GANNET_RETURN_IF_ERROR(JsonValue(e, o, level + 1, out));
      }
      newline(level);
      *out += ']';
      return Status::Ok();
    }
    case Value::Kind::kDict: {
      if (v.dict().items.empty()) {
        *out += "{}";
        return Status::Ok();
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict().items) items.push_back(&kv);
      if (o.sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](auto* a, auto* b) { return a->first < b->first; });
      }
      *out += '{';
      bool first = true;
      for (const auto* kv : items) {
        if (!first) *out += item_sep;
        first = false;
        newline(level + 1);
        JsonString(kv->first, out);
        *out += ": ";
        GANNET_RETURN_IF_ERROR(JsonValue(kv->second, o, level + 1, out));
      }
      newline(level);
      *out += '}';
      return Status::Ok();
    }
    default:
      return Status::InvalidArgument("Object of type " + v.TypeName() +
                                     " is not JSON serializable");
  }
}

// Stops early when the meter runs out or the text passes its max_bytes.
void ReprInto(const Value& v, int level, std::string* out, WorkMeter* meter) {
  if (level > 256) {
    *out += "...";
    return;
  }
  if (meter != nullptr && (!meter->Charge(1 + (v.is_string() ? v.str().size() : 0)) ||
                           out->size() > meter->max_bytes())) {
    return;
  }
  switch (v.kind()) {
    case Value::Kind::kString:
      *out += StrRepr(v.str());
      return;
    case Value::Kind::kList: {
      *out += v.is_tuple() ? '(' : '[';
      bool first = true;
      for (const Value& e : v.list()) {
        if (!first) *out += ", ";
        first = false;
        ReprInto(e, level + 1, out, meter);
      }
      if (v.is_tuple() && v.list().size() == 1) *out += ',';
      *out += v.is_tuple() ? ')' : ']';
      return;
    }
    case Value::Kind::kDict: {
      *out += '{';
      bool first = true;
      for (const auto& [k, e] : v.dict().items) {
        if (!first) *out += ", ";
        first = false;
        *out += StrRepr(k);
        *out += ": ";
        ReprInto(e, level + 1, out, meter);
      }
      *out += '}';
      return;
    }
    case Value::Kind::kUndefined:
      return;
    default:
      *out += ToStr(v);
  }
}

}  // namespace

std::string ToStr(const Value& v, WorkMeter* meter) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.bool_value() ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.int_value());
    case Value::Kind::kFloat:
      return FloatRepr(v.float_value());
    case Value::Kind::kString:
      return v.str();
    case Value::Kind::kNamespace:
      return "<Namespace>";
    case Value::Kind::kCallable:
      return "<function " + v.callable().name + ">";
    default: {
      std::string out;
      ReprInto(v, 0, &out, meter);
      return out;
    }
  }
}

std::string Repr(const Value& v, WorkMeter* meter) {
  std::string out;
  ReprInto(v, 0, &out, meter);
  return out;
}

Result<std::string> ToJson(const Value& v, const JsonOptions& options) {
  std::string out;
  GANNET_RETURN_IF_ERROR(JsonValue(v, options, 0, &out));
  return out;
}

bool Equals(const Value& a, const Value& b, WorkMeter* meter) {
  if (meter != nullptr &&
      !meter->Charge(
          1 + (a.is_string() && b.is_string() ? std::min(a.str().size(), b.str().size()) : 0))) {
    return false;
  }
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.AsDouble() == b.AsDouble();
    return a.int_value() == b.int_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.str() == b.str();
    case Value::Kind::kList: {
      if (a.is_tuple() != b.is_tuple() || a.list().size() != b.list().size()) return false;
      for (size_t i = 0; i < a.list().size(); ++i) {
        if (!Equals(a.list()[i], b.list()[i], meter)) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      if (a.dict().items.size() != b.dict().items.size()) return false;
      for (const auto& [k, v] : a.dict().items) {
        const Value* other = b.dict().Find(k);
        if (other == nullptr || !Equals(v, *other, meter)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.ns() == &b.ns();
    case Value::Kind::kCallable:
      return &a.callable() == &b.callable();
    default:
      return false;
  }
}

Result<bool> Less(const Value& a, const Value& b, WorkMeter* meter) {
  if (meter != nullptr &&
      !meter->Charge(
          1 + (a.is_string() && b.is_string() ? std::min(a.str().size(), b.str().size()) : 0))) {
    return Status::ResourceExhausted("the template exceeded its work limit");
  }
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.AsDouble() < b.AsDouble();
    return a.int_value() < b.int_value();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order = code point order
  if (a.is_list() && b.is_list()) {
    const List& x = a.list();
    const List& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i], meter)) continue;
      if (meter != nullptr && meter->exhausted()) {
        return Status::ResourceExhausted("the template exceeded its work limit");
      }
      return Less(x[i], y[i], meter);
    }
    return x.size() < y.size();
  }
  return Status::InvalidArgument("'<' not supported between instances of '" + a.TypeName() +
                                 "' and '" + b.TypeName() + "'");
}

size_t FindText(std::string_view hay, std::string_view needle, size_t from) {
  if (from > hay.size()) return std::string_view::npos;
  if (needle.empty()) return from;
  // glibc's memmem is the two-way algorithm: linear time, constant space.
  const void* p = memmem(hay.data() + from, hay.size() - from, needle.data(), needle.size());
  return p == nullptr ? std::string_view::npos
                      : static_cast<size_t>(static_cast<const char*>(p) - hay.data());
}

size_t RFindText(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return std::string_view::npos;
  if (needle.empty()) return hay.size();
  // The last occurrence is the first one in the reversed strings.
  const std::string rh(hay.rbegin(), hay.rend()), rn(needle.rbegin(), needle.rend());
  const size_t p = FindText(rh, rn);
  return p == std::string_view::npos ? p : hay.size() - p - needle.size();
}

}  // namespace gannet::jinja
