// Values of the Jinja interpreter (chat templates): Python's data model, as far as chat templates
// see it (None, bool, int, float, str, list/tuple, dict, jinja's Undefined and namespace()).
//
// Strings, lists and dicts are immutable and shared (copying a Value is cheap), as in Jinja's
// ImmutableSandboxedEnvironment, which Hugging Face renders chat templates with. A namespace() is
// the one mutable object (`{% set ns.x = ... %}`). Strings are UTF-8; lengths, indexes and slices
// count code points, as Python does.
// Thread-safety: Values are not synchronised; a Value tree belongs to one render.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"

namespace gannet::jinja {

class Value;
struct CallArgs;

using List = std::vector<Value>;

// A dict keeps insertion order (Python 3.7+); keys are strings (what JSON and chat messages have).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* Find(std::string_view key) const;
};

// namespace(): attributes assignable from inside loops.
struct Namespace {
  Dict attrs;
};

// A function value (a macro, a global like range(), a bound method such as loop.cycle).
struct Callable {
  std::string name;
  std::function<Result<Value>(CallArgs&)> fn;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kCallable
  };

  Value() = default;  // undefined
  static Value Undefined(std::string hint = "");
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value Str(std::string s);
  static Value MakeList(List items, bool tuple = false);
  static Value MakeDict(Dict dict);
  static Value MakeNamespace(Dict attrs);
  static Value MakeCallable(std::string name, std::function<Result<Value>(CallArgs&)> fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  // REQUIRES: the matching kind.
  bool bool_value() const { return i_ != 0; }
  int64_t int_value() const { return i_; }  // also bool (0/1)
  double float_value() const { return f_; }
  double AsDouble() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(i_); }
  const std::string& str() const { return *s_; }
  const List& list() const { return *list_; }
  const Dict& dict() const { return *dict_; }
  Namespace& ns() const { return *ns_; }
  const Callable& callable() const { return *fn_; }
  // What an undefined value stands for ("'x' is undefined"), for error messages.
  const std::string& undefined_hint() const;

  // Nesting of lists and dicts (0 for scalars and namespaces): bounds the recursion of ==, repr and
  // tojson, and the interpreter refuses to store values nested deeper than its limit.
  int depth() const { return depth_; }

  // Python truthiness (undefined is false).
  bool Truthy() const;
  // Python type name as Jinja's errors show it ("str", "dict object", ...).
  std::string TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;
  int depth_ = 0;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const List> list_;
  std::shared_ptr<const Dict> dict_;
  std::shared_ptr<Namespace> ns_;
  std::shared_ptr<const Callable> fn_;
};

// Arguments of a call: positional then keyword.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  // The named argument `name` or positional `pos`; nullptr when neither was given.
  const Value* Get(size_t pos, std::string_view name) const;
};

// Meters the deep operations on values: ToStr / Repr / ToJson of containers, Equals and Less.
// Values share structure (a list of a million references to one 4 MB string costs a template
// little), so their cost is not bounded by their memory. Each element visited and each byte
// produced or compared is one unit; once `units` are spent the operation stops early (its result
// is then meaningless) and exhausted() is set. A produced text also stops growing past
// `max_bytes` (the caller sees it is too long). jinja::Budget owns one per render and fails the
// render when it is exhausted. A null meter means unmetered (trusted, small values).
class WorkMeter {
 public:
  WorkMeter(uint64_t units, size_t max_bytes) : left_(units), max_bytes_(max_bytes) {}
  // Spends n units; false (and exhausted from then on) when fewer were left.
  bool Charge(uint64_t n) {
    if (exhausted_ || n > left_) {
      exhausted_ = true;
      left_ = 0;
      return false;
    }
    left_ -= n;
    return true;
  }
  bool exhausted() const { return exhausted_; }
  size_t max_bytes() const { return max_bytes_; }

 private:
  uint64_t left_;
  size_t max_bytes_;
  bool exhausted_ = false;
};

// str(v) as Python prints it inside a template ({{ v }}): None -> "None", True -> "True",
// 1.0 -> "1.0", lists and dicts as their repr; undefined -> "".
std::string ToStr(const Value& v, WorkMeter* meter = nullptr);
// repr(v): strings quoted the way Python picks quotes.
std::string Repr(const Value& v, WorkMeter* meter = nullptr);
// Python's repr of a float ("1.0", "1e+20", "0.0001", "inf").
std::string FloatRepr(double d);

struct JsonOptions {
  int indent = -1;  // < 0: one line with ", " and ": " separators
  bool sort_keys = false;
  WorkMeter* meter = nullptr;  // charged per element and byte; exhausted: an error
};
// json.dumps(v, ensure_ascii=False, ...) as Hugging Face's tojson filter calls it. Undefined,
// namespaces and callables are not serialisable (an error).
Result<std::string> ToJson(const Value& v, const JsonOptions& options);

// Python ==: deep for lists and dicts, 1 == 1.0 == True.
bool Equals(const Value& a, const Value& b, WorkMeter* meter = nullptr);
// Python <: numbers with numbers, strings with strings, lists element-wise; otherwise an error.
Result<bool> Less(const Value& a, const Value& b, WorkMeter* meter = nullptr);

// The first (last) occurrence of `needle` in `hay` at or after `from` (ending at or before
// hay.size()); npos if none. Linear in hay.size() + needle.size() (two-way search), unlike
// std::string::find, whose worst case is their product.
size_t FindText(std::string_view hay, std::string_view needle, size_t from = 0);
size_t RFindText(std::string_view hay, std::string_view needle);

// UTF-8 <-> code points (invalid bytes decode to U+FFFD one byte at a time).
std::u32string DecodeUtf8(std::string_view s);
std::string EncodeUtf8(std::u32string_view s);
size_t CodePointCount(std::string_view s);

}  // namespace gannet::jinja
