// The JSON Schema converter's internals, shared by json_schema.cc (types, references, merging,
// strings, numbers) and json_schema_containers.cc (objects and arrays). Internal to grammar/.
//
// A Converter walks the schema once, depth first, turning each subschema into a GBNF symbol (a
// rule name, a built-in rule such as `value` or `string`, or a literal) and collecting the rules
// (identical bodies shared). Thread-safety: none; one Converter per conversion.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "grammar/json_schema.h"
#include "grammar/json_schema_regex.h"

namespace gannet::grammar::json_schema_internal {

using Json = nlohmann::ordered_json;
inline constexpr uint64_t kUnbounded = PatternGbnf::kUnbounded;

// A property name as a JSON pointer token (~ and / escaped).
std::string PointerToken(const std::string& s);
// The GBNF repetition suffix of lo..hi (hi == kUnbounded: no upper bound).
std::string RepeatSuffix(uint64_t lo, uint64_t hi);
// The GBNF literal of one double quote.
const std::string& Quote();

class Converter {
 public:
  Converter(const Json& root, const JsonSchemaLimits& limits) : root_(root), limits_(limits) {}
  // The GBNF text of the whole schema.
  Result<std::string> Run();

 private:
  // "json schema: <message> (at #<path>)"
  Status Error(const std::string& path, const std::string& message) const;
  std::string NewName(const std::string& hint);
  // A rule with this body (one per distinct body).
  std::string Rule(const std::string& hint, const std::string& body);
  // Counts repetition bounds (each lowers to GBNF rules) against the limit.
  Status ChargeRepetition(uint64_t n, const std::string& path, const std::string& keyword);

  // A GBNF symbol (a rule name or a literal) of the JSON texts valid against `s`, no blanks
  // around them; `path` is its JSON pointer, for errors.
  Result<std::string> Visit(const Json& s, const std::string& path, size_t depth);
  Result<std::string> VisitRef(const std::string& ref, const std::string& path, size_t depth);
  Result<std::string> VisitAnyOf(const Json& s, const std::string& path, size_t depth);
  Result<std::string> VisitEnum(const Json& s, const std::string& path);
  Result<std::vector<std::string>> Types(const Json& s, const std::string& path);
  Result<std::string> TypeExpr(const Json& s, const std::string& type, const std::string& path,
                               size_t depth);
  Result<std::string> StringExpr(const Json& s, const std::string& path);
  Result<std::string> NumberExpr(const Json& s, const std::string& path, bool integer);
  Result<std::optional<uint64_t>> Count(const Json& s, const char* keyword,
                                        const std::string& path);
  Result<const Json*> Resolve(const std::string& ref, const std::string& path);
  Status Flatten(const Json& s, const std::string& path, int budget, std::vector<Json>* parts);
  Result<Json> Merge(const std::vector<Json>& parts, const std::string& path);

  // json_schema_containers.cc
  struct Property {
    std::string name, value;  // value: the GBNF symbol of its schema
    bool required = false;
  };
  Result<std::string> ObjectExpr(const Json& s, const std::string& path, size_t depth);
  // The properties (declared, then required-only ones) and the extra properties' value symbol
  // ("" when none may appear).
  Status ReadProperties(const Json& s, const std::string& path, size_t depth,
                        std::vector<Property>* props, std::string* extra_value);
  std::string ObjectRules(const std::vector<Property>& props, const std::string& extra);
  Result<std::string> ArrayExpr(const Json& s, const std::string& path, size_t depth);
  std::string ExtraKey(const std::vector<std::string>& names);

  const Json& root_;
  JsonSchemaLimits limits_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::unordered_map<std::string, std::string> by_body_;
  std::unordered_map<std::string, std::string> by_ref_;
  size_t counter_ = 0;
  size_t visits_ = 0;
  size_t bytes_ = 0;
  uint64_t repetition_ = 0;
};

}  // namespace gannet::grammar::json_schema_internal
