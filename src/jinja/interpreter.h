// Interpreter of parsed chat templates (parser.h) with Jinja-under-Python semantics, as
// Hugging Face renders them (ImmutableSandboxedEnvironment, loopcontrols): Undefined prints as ""
// and errors when used further, `a or b` returns an operand, strings are immutable, lists and dicts
// cannot be mutated (only namespace() attributes can).
//
// Templates are untrusted: every resource a template can consume is bounded by RenderLimits and
// exceeding a limit is a kResourceExhausted Status naming the limit; nothing reaches files, the
// environment or the clock (the caller's globals decide, e.g. strftime_now).
// Thread-safety: Render() only reads the Template; concurrent renders of one Template are fine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "jinja/parser.h"
#include "jinja/value.h"

namespace gannet::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{4} << 20;  // the rendered text (and any captured block)
  size_t max_string_bytes = size_t{4} << 20;  // one string value ('a' * n, ~, join, tojson ...)
  size_t max_collection_size = size_t{1}
                               << 20;      // one list made by the template (range, [x] * n, +)
  uint64_t max_loop_iterations = 1000000;  // total over one render, nested loops included
  int max_call_depth = 64;                 // nested macro calls (recursion)
  int max_value_depth = 128;               // lists/dicts in lists/dicts stored in a namespace
  uint64_t max_work = uint64_t{1} << 28;   // bytes + elements produced in total (bounds time)
};

// Accounting shared by the evaluator and the built-in filters of one render.
class Budget {
 public:
  explicit Budget(const RenderLimits& limits)
      : limits_(limits), meter_(limits.max_work, limits.max_string_bytes) {}
  const RenderLimits& limits() const { return limits_; }
  // Charges `n` units of work (bytes or elements produced); an error once the work limit is
  // spent, here or by a deep operation on values through meter(). Work(0) checks.
  Status Work(uint64_t n);
  // The meter of the deep operations (value.h) that counts against the same limit.
  WorkMeter* meter() { return &meter_; }
  // A string of `bytes` is about to be produced.
  Status String(size_t bytes);
  // A list of `n` elements is about to be produced.
  Status Collection(size_t n);
  Status LoopIteration();

 private:
  RenderLimits limits_;
  WorkMeter meter_;
  uint64_t iterations_ = 0;
};

// Renders `tmpl` with `globals` (messages, add_generation_prompt, callables such as
// raise_exception ...). Built-in globals: range, namespace, dict. Errors name the template, line
// and column of the expression that failed.
Result<std::string> Render(const Template& tmpl, const Dict& globals, const RenderLimits& limits);

// --- built-ins (builtins.cc), used by the interpreter --------------------------------------
// Errors are plain messages; the interpreter adds the location.

// Calls a filter by name: `value | name(args)`.
Result<Value> ApplyFilter(Budget& budget, std::string_view name, const Value& value,
                          CallArgs& args);
// `value is name(args)`.
Result<bool> ApplyTest(std::string_view name, const Value& value, CallArgs& args, WorkMeter* meter);
// obj.name as Jinja resolves it (methods of str/dict/list as bound callables, dict keys,
// namespace attributes); Undefined when absent. REQUIRES: !obj.is_undefined().
Value GetAttr(Budget& budget, const Value& obj, const std::string& name);
// obj[key]; Undefined when absent. REQUIRES: !obj.is_undefined().
Value GetItem(Budget& budget, const Value& obj, const Value& key);
// obj[start:stop:step] for strings and lists (null pointers: omitted bounds).
Result<Value> GetSlice(Budget& budget, const Value& obj, const Value* start, const Value* stop,
                       const Value* step);
// `item in container`.
Result<bool> Contains(const Value& container, const Value& item, WorkMeter* meter);
// The error of a render whose work limit a deep operation (WorkMeter) ran out.
Status WorkExhausted();
// Elements of an iterable as a for loop sees them (dict: keys, string: characters, undefined:
// none).
Result<List> Iterate(const Value& v);

}  // namespace gannet::jinja
