#include "grammar/json_schema.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "grammar/json_schema_number.h"
#include "grammar/json_schema_regex.h"
#include "grammar/strict_utf8.h"

namespace gannet::grammar {
namespace {

using Json = nlohmann::ordered_json;
constexpr uint64_t kUnbounded = PatternGbnf::kUnbounded;

// The rules every grammar may use. `ws` is one bounded run of blanks; `char` one JSON string
// character (no \u escape of a surrogate, so each is one code point); `keychar` one character of
// an extra property's key (no escapes); `frac` a fraction with a non-zero last digit.
const char kPrelude[] = R"g(ws ::= [ \t\n]{0,20}
value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( member ( "," ws member )* )? "}"
member ::= string ws ":" ws value ws
array ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
string ::= "\"" char* "\""
char ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] hex hex hex | [dD] [0-7] hex hex ) )
hex ::= [0-9a-fA-F]
keychar ::= [^"\\\x00-\x1F]
number ::= integer ( "." [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,2} )?
integer ::= "-"? ( "0" | [1-9] [0-9]{0,14} )
frac ::= "." [0-9]{0,14} [1-9]
boolean ::= "true" | "false"
)g";

const std::set<std::string>& Annotations() {
  static const std::set<std::string> k = {"title",    "description", "$schema", "$id",
                                          "$comment", "examples",    "default", "deprecated",
                                          "readOnly", "writeOnly",   "$defs",   "definitions"};
  return k;
}

const std::set<std::string>& Supported() {
  static const std::set<std::string> k = {"type",
                                          "enum",
                                          "const",
                                          "anyOf",
                                          "oneOf",
                                          "allOf",
                                          "$ref",
                                          "properties",
                                          "required",
                                          "additionalProperties",
                                          "minProperties",
                                          "maxProperties",
                                          "items",
                                          "prefixItems",
                                          "additionalItems",
                                          "minItems",
                                          "maxItems",
                                          "uniqueItems",
                                          "minLength",
                                          "maxLength",
                                          "pattern",
                                          "format",
                                          "minimum",
                                          "maximum",
                                          "exclusiveMinimum",
                                          "exclusiveMaximum"};
  return k;
}

bool IsAnnotation(const std::string& k) { return Annotations().count(k) != 0; }

// Keywords that only apply to one type, for a schema without "type".
const std::map<std::string, std::string>& KeywordTypes() {
  static const std::map<std::string, std::string> k = {{"properties", "object"},
                                                       {"required", "object"},
                                                       {"additionalProperties", "object"},
                                                       {"minProperties", "object"},
                                                       {"maxProperties", "object"},
                                                       {"items", "array"},
                                                       {"prefixItems", "array"},
                                                       {"additionalItems", "array"},
                                                       {"minItems", "array"},
                                                       {"maxItems", "array"},
                                                       {"uniqueItems", "array"},
                                                       {"minLength", "string"},
                                                       {"maxLength", "string"},
                                                       {"pattern", "string"},
                                                       {"format", "string"},
                                                       {"minimum", "number"},
                                                       {"maximum", "number"},
                                                       {"exclusiveMinimum", "number"},
                                                       {"exclusiveMaximum", "number"}};
  return k;
}

// Formats as patterns (json_schema_regex.h); each is what Python's jsonschema accepts.
std::optional<std::string> FormatPattern(const std::string& format) {
  const std::string year = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])";
  // February stops at 28: the 29th exists only in leap years.
  const std::string month_day =
      "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|"
      "02-(?:0[1-9]|1[0-9]|2[0-8]))";
  const std::string date = year + "-" + month_day;
  const std::string time =
      "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
      "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
  if (format == "date") return "^" + date + "$";
  if (format == "time") return "^" + time + "$";
  if (format == "date-time") return "^" + date + "T" + time + "$";
  if (format == "uuid") {
    return "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
  }
  if (format == "ipv4") {
    const std::string octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    return "^" + octet + "\\." + octet + "\\." + octet + "\\." + octet + "$";
  }
  if (format == "email") {
    return "^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\\.[A-Za-z0-9-]{1,63}){1,4}$";
  }
  return std::nullopt;
}

std::string PointerToken(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

bool TypeMatches(const Json& v, const std::string& type) {
  if (type == "null") return v.is_null();
  if (type == "boolean") return v.is_boolean();
  if (type == "string") return v.is_string();
  if (type == "array") return v.is_array();
  if (type == "object") return v.is_object();
  if (type == "number") return v.is_number();
  if (type == "integer") {
    if (v.is_number_integer() || v.is_number_unsigned()) return true;
    return v.is_number_float() && std::isfinite(v.get<double>()) &&
           std::floor(v.get<double>()) == v.get<double>();
  }
  return false;
}

std::string RepeatSuffix(uint64_t lo, uint64_t hi) {
  if (lo == 0 && hi == kUnbounded) return "*";
  if (lo == 1 && hi == kUnbounded) return "+";
  if (lo == 0 && hi == 1) return "?";
  if (hi == kUnbounded) return "{" + std::to_string(lo) + ",}";
  if (lo == hi) return "{" + std::to_string(lo) + "}";
  return "{" + std::to_string(lo) + "," + std::to_string(hi) + "}";
}

const std::string& Quote() {
  static const std::string q = GbnfLiteral("\"");
  return q;
}

class Converter {
 public:
  Converter(const Json& root, const JsonSchemaLimits& limits) : root_(root), limits_(limits) {}

  Result<std::string> Run() {
    std::string root;
    GANNET_ASSIGN_OR_RETURN(root, Visit(root_, "", 0));
    std::string text = "root ::= " + root + "\n";
    for (const auto& [name, body] : rules_) text += name + " ::= " + body + "\n";
    text += kPrelude;
    if (text.size() > limits_.max_grammar_bytes) {
      return Error(
          "", "the grammar would be over " + std::to_string(limits_.max_grammar_bytes) + " bytes");
    }
    return text;
  }

 private:
  Status Error(const std::string& path, const std::string& message) const {
    return Status::InvalidArgument("json schema: " + message + " (at #" + path + ")");
  }

  std::string NewName(const std::string& hint) {
    std::string name;
    for (char c : hint) {
      if (name.size() >= 24) break;
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      name += ok ? c : '_';
    }
    if (name.empty()) name = "r";
    return name + "-" + std::to_string(++counter_);
  }

  // A rule with this body (one per distinct body).
  std::string Rule(const std::string& hint, const std::string& body) {
    auto it = by_body_.find(body);
    if (it != by_body_.end()) return it->second;
    std::string name = NewName(hint);
    bytes_ += name.size() + body.size() + 6;
    rules_.emplace_back(name, body);
    by_body_.emplace(body, name);
    return name;
  }

  Status ChargeRepetition(uint64_t n, const std::string& path, const std::string& keyword) {
    repetition_ += n;
    if (repetition_ > limits_.max_total_repetition) {
      return Error(path, "'" + keyword + "': the schema's repetition bounds add up to more than " +
                             std::to_string(limits_.max_total_repetition));
    }
    return Status::Ok();
  }

  Result<std::string> Visit(const Json& s, const std::string& path, size_t depth);
  Result<std::string> VisitRef(const std::string& ref, const std::string& path, size_t depth);
  Result<std::string> VisitAnyOf(const Json& s, const std::string& path, size_t depth);
  Result<std::string> VisitEnum(const Json& s, const std::string& path);
  Result<std::vector<std::string>> Types(const Json& s, const std::string& path);
  Result<std::string> TypeExpr(const Json& s, const std::string& type, const std::string& path,
                               size_t depth);
  Result<std::string> StringExpr(const Json& s, const std::string& path);
  Result<std::string> NumberExpr(const Json& s, const std::string& path, bool integer);
  Result<std::string> ObjectExpr(const Json& s, const std::string& path, size_t depth);
  Result<std::string> ArrayExpr(const Json& s, const std::string& path, size_t depth);
  std::string ExtraKey(const std::vector<std::string>& names);
  Result<std::optional<uint64_t>> Count(const Json& s, const char* keyword,
                                        const std::string& path);
  Result<const Json*> Resolve(const std::string& ref, const std::string& path);
  Status Flatten(const Json& s, const std::string& path, int budget, std::vector<Json>* parts);
  Result<Json> Merge(const std::vector<Json>& parts, const std::string& path);

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

Result<std::string> Converter::Visit(const Json& s, const std::string& path, size_t depth) {
  if (++visits_ > limits_.max_subschemas) {
    return Error(path, "more than " + std::to_string(limits_.max_subschemas) + " subschemas");
  }
  if (depth > limits_.max_depth) {
    return Error(path, "subschemas nested deeper than " + std::to_string(limits_.max_depth));
  }
  if (bytes_ > limits_.max_grammar_bytes) {
    return Error(
        path, "the grammar would be over " + std::to_string(limits_.max_grammar_bytes) + " bytes");
  }
  if (s.is_boolean()) {
    if (s.get<bool>()) return std::string("value");
    return Error(path, "the schema false admits no value");
  }
  if (!s.is_object()) return Error(path, "a schema must be an object or a boolean");
  bool siblings = false;
  for (const auto& [k, v] : s.items()) {
    if (IsAnnotation(k)) {
      if (k == "$id" && !path.empty()) return Error(path, "'$id' inside a schema is not supported");
      continue;
    }
    if (Supported().count(k) == 0) return Error(path, "'" + k + "' is not supported");
    if (k != "$ref" && k != "allOf") siblings = true;
  }
  if (s.contains("$ref") && !siblings && !s.contains("allOf")) {
    if (!s["$ref"].is_string()) return Error(path, "'$ref' must be a string");
    return VisitRef(s["$ref"].get<std::string>(), path, depth);
  }
  if (s.contains("$ref") || s.contains("allOf")) {
    std::vector<Json> parts;
    GANNET_RETURN_IF_ERROR(Flatten(s, path, 64, &parts));
    Json merged;
    GANNET_ASSIGN_OR_RETURN(merged, Merge(parts, path));
    return Visit(merged, path, depth + 1);
  }
  if (s.contains("anyOf") || s.contains("oneOf")) return VisitAnyOf(s, path, depth);
  if (s.contains("enum") || s.contains("const")) return VisitEnum(s, path);
  std::vector<std::string> types;
  GANNET_ASSIGN_OR_RETURN(types, Types(s, path));
  std::vector<std::string> alts;
  for (const std::string& t : types) {
    std::string e;
    GANNET_ASSIGN_OR_RETURN(e, TypeExpr(s, t, path, depth));
    alts.push_back(e);
  }
  if (alts.size() == 1) return alts[0];
  std::string body;
  for (const std::string& a : alts) body += (body.empty() ? "" : " | ") + a;
  return Rule("alt", body);
}

Result<const Json*> Converter::Resolve(const std::string& ref, const std::string& path) {
  if (ref.empty() || ref[0] != '#') {
    return Error(path, "'$ref' \"" + ref + "\" is not supported (only \"#...\" in the schema)");
  }
  if (ref.size() == 1) return &root_;
  try {
    Json::json_pointer pointer(ref.substr(1));
    if (!root_.contains(pointer)) return Error(path, "'$ref' \"" + ref + "\" names nothing");
    return &root_.at(pointer);
  } catch (const nlohmann::json::exception&) {
    return Error(path, "'$ref' \"" + ref + "\" is not a valid JSON pointer");
  }
}

Result<std::string> Converter::VisitRef(const std::string& ref, const std::string& path,
                                        size_t depth) {
  auto it = by_ref_.find(ref);
  if (it != by_ref_.end()) return it->second;
  const Json* target;
  GANNET_ASSIGN_OR_RETURN(target, Resolve(ref, path));
  std::string name = NewName(ref.substr(ref.rfind('/') + 1));
  by_ref_.emplace(ref, name);
  std::string body;
  GANNET_ASSIGN_OR_RETURN(body, Visit(*target, ref.substr(1), depth + 1));
  bytes_ += name.size() + body.size() + 6;
  rules_.emplace_back(name, body);
  return name;
}

// The parts whose conjunction `s` is: its $ref target and allOf members, followed, and the rest of
// its own keywords. `budget` bounds reference chains.
Status Converter::Flatten(const Json& s, const std::string& path, int budget,
                          std::vector<Json>* parts) {
  if (budget <= 0) return Error(path, "'allOf'/'$ref' chains too long or cyclic to merge");
  if (s.is_boolean()) {
    if (!s.get<bool>()) return Error(path, "the schema false admits no value");
    return Status::Ok();
  }
  if (!s.is_object()) return Error(path, "a schema must be an object or a boolean");
  Json rest = s;
  if (s.contains("$ref")) {
    if (!s["$ref"].is_string()) return Error(path, "'$ref' must be a string");
    const Json* target;
    GANNET_ASSIGN_OR_RETURN(target, Resolve(s["$ref"].get<std::string>(), path));
    GANNET_RETURN_IF_ERROR(Flatten(*target, path, budget - 1, parts));
    rest.erase("$ref");
  }
  if (s.contains("allOf")) {
    const Json& all = s["allOf"];
    if (!all.is_array() || all.empty()) return Error(path, "'allOf' must be a non-empty array");
    for (size_t i = 0; i < all.size(); ++i) {
      GANNET_RETURN_IF_ERROR(
          Flatten(all[i], path + "/allOf/" + std::to_string(i), budget - 1, parts));
    }
    rest.erase("allOf");
  }
  parts->push_back(std::move(rest));
  return Status::Ok();
}

Result<std::vector<std::string>> TypeList(const Json& t) {
  std::vector<std::string> out;
  for (const Json& v : t.is_array() ? t : Json::array({t})) {
    if (!v.is_string()) return Status::InvalidArgument("");
    out.push_back(v.get<std::string>());
  }
  return out;
}

// The conjunction of flattened parts as one schema, key by key; an error where that would not
// mean the same.
Result<Json> Converter::Merge(const std::vector<Json>& parts, const std::string& path) {
  Json out = Json::object();
  for (size_t i = 0; i < parts.size(); ++i) {
    for (const auto& [k, v] : parts[i].items()) {
      if (IsAnnotation(k)) continue;
      if (!out.contains(k)) {
        out[k] = v;
      } else if (k == "required" && v.is_array() && out[k].is_array()) {
        for (const Json& r : v) {
          if (std::find(out[k].begin(), out[k].end(), r) == out[k].end()) out[k].push_back(r);
        }
      } else if (k == "type") {
        auto a = TypeList(out[k]), b = TypeList(v);
        if (!a.ok() || !b.ok()) return Error(path, "'type' must be a string or strings");
        Json both = Json::array();
        for (const std::string& t : *a) {
          for (const std::string& u : *b) {
            if (t == u || (t == "integer" && u == "number")) both.push_back(t);
            if (t == "number" && u == "integer") both.push_back(u);
          }
        }
        if (both.empty()) return Error(path, "'allOf' parts with no 'type' in common");
        out[k] = both;
      } else if (k == "properties" && v.is_object() && out[k].is_object()) {
        for (const auto& [name, sub] : v.items()) {
          if (out[k].contains(name)) {
            out[k][name] = Json{{"allOf", Json::array({out[k][name], sub})}};
          } else {
            out[k][name] = sub;
          }
        }
      } else if (out[k] != v) {
        return Error(path, "'allOf': '" + k + "' differs between parts that would be merged");
      }
    }
  }
  // additionalProperties refers to its own part's properties (items to prefixItems): such a
  // pair may come from one part only.
  for (const auto& [a, b] :
       {std::pair<const char*, const char*>{"additionalProperties", "properties"},
        {"items", "prefixItems"}}) {
    size_t touching = 0;
    bool has_a = false;
    for (const Json& part : parts) {
      touching += part.contains(a) || part.contains(b);
      has_a = has_a || part.contains(a);
    }
    if (touching > 1 && has_a) {
      return Error(path, std::string("'allOf': '") + a + "' with '" + b +
                             "' of another part cannot be merged");
    }
  }
  return out;
}

Result<std::string> Converter::VisitAnyOf(const Json& s, const std::string& path, size_t depth) {
  if (s.contains("anyOf") && s.contains("oneOf")) {
    return Error(path, "'anyOf' together with 'oneOf' is not supported");
  }
  const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
  const Json& branches = s[key];
  if (!branches.is_array() || branches.empty()) {
    return Error(path, std::string("'") + key + "' must be a non-empty array");
  }
  Json rest = s;
  rest.erase(key);
  bool siblings = false;
  for (const auto& [k, v] : rest.items()) siblings = siblings || !IsAnnotation(k);
  std::string body;
  for (size_t i = 0; i < branches.size(); ++i) {
    std::string sub_path = path + "/" + key + "/" + std::to_string(i);
    std::string e;
    if (siblings) {  // {type: object, anyOf: [...]}: each branch with the shared keywords
      std::vector<Json> parts;
      GANNET_RETURN_IF_ERROR(Flatten(rest, path, 64, &parts));
      GANNET_RETURN_IF_ERROR(Flatten(branches[i], sub_path, 64, &parts));
      Json merged;
      GANNET_ASSIGN_OR_RETURN(merged, Merge(parts, sub_path));
      GANNET_ASSIGN_OR_RETURN(e, Visit(merged, sub_path, depth + 1));
    } else {
      GANNET_ASSIGN_OR_RETURN(e, Visit(branches[i], sub_path, depth + 1));
    }
    body += (body.empty() ? "" : " | ") + e;
  }
  return Rule(key, body);
}

Result<std::string> Converter::VisitEnum(const Json& s, const std::string& path) {
  for (const auto& [k, v] : s.items()) {
    if (!IsAnnotation(k) && k != "enum" && k != "const" && k != "type") {
      return Error(path, "'" + k + "' together with 'enum' or 'const' is not supported");
    }
  }
  Json values = Json::array();
  if (s.contains("const")) {
    values.push_back(s["const"]);
    if (s.contains("enum") &&
        (!s["enum"].is_array() ||
         std::find(s["enum"].begin(), s["enum"].end(), s["const"]) == s["enum"].end())) {
      return Error(path, "'const' is not one of 'enum': no value is valid");
    }
  } else {
    values = s["enum"];
    if (!values.is_array() || values.empty()) {
      return Error(path, "'enum' must be a non-empty array");
    }
    if (values.size() > limits_.max_enum) {
      return Error(path, "'enum' has more than " + std::to_string(limits_.max_enum) + " values");
    }
  }
  std::vector<std::string> types;
  if (s.contains("type")) {
    GANNET_ASSIGN_OR_RETURN(types, Types(s, path));
  }
  std::string body;
  for (const Json& v : values) {
    bool ok = types.empty();
    for (const std::string& t : types) ok = ok || TypeMatches(v, t);
    if (!ok) continue;
    std::string text;
    try {
      text = v.dump();
    } catch (const nlohmann::json::exception&) {
      return Error(path, "'enum' has a value that is not valid UTF-8");
    }
    body += (body.empty() ? "" : " | ") + GbnfLiteral(text);
  }
  if (body.empty()) return Error(path, "no value of 'enum' or 'const' has the schema's 'type'");
  return Rule("enum", body);
}

Result<std::vector<std::string>> Converter::Types(const Json& s, const std::string& path) {
  static const std::set<std::string> kTypes = {"null",   "boolean", "object", "array",
                                               "number", "integer", "string"};
  std::vector<std::string> types;
  if (s.contains("type")) {
    auto list = TypeList(s["type"]);
    if (!list.ok() || list->empty()) return Error(path, "'type' must be a string or strings");
    for (const std::string& t : *list) {
      if (!kTypes.count(t)) return Error(path, "'type' \"" + t + "\" is not a JSON type");
      if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
    }
  } else {
    for (const auto& [k, v] : s.items()) {
      auto it = KeywordTypes().find(k);
      if (it == KeywordTypes().end()) continue;
      if (std::find(types.begin(), types.end(), it->second) == types.end()) {
        types.push_back(it->second);
      }
    }
    if (types.empty()) types.push_back("any");
  }
  // number includes integer
  if (std::find(types.begin(), types.end(), "number") != types.end()) {
    types.erase(std::remove(types.begin(), types.end(), "integer"), types.end());
  }
  return types;
}

Result<std::string> Converter::TypeExpr(const Json& s, const std::string& type,
                                        const std::string& path, size_t depth) {
  if (type == "any") return std::string("value");
  if (type == "null") return GbnfLiteral("null");
  if (type == "boolean") return std::string("boolean");
  if (type == "string") return StringExpr(s, path);
  if (type == "integer") return NumberExpr(s, path, true);
  if (type == "number") return NumberExpr(s, path, false);
  if (type == "object") return ObjectExpr(s, path, depth);
  return ArrayExpr(s, path, depth);
}

Result<std::optional<uint64_t>> Converter::Count(const Json& s, const char* keyword,
                                                 const std::string& path) {
  auto it = s.find(keyword);
  if (it == s.end()) return std::optional<uint64_t>();
  double v = it->is_number() ? it->get<double>() : -1;
  if (!(v >= 0) || std::floor(v) != v || v > 1e15) {
    return Error(path, std::string("'") + keyword + "' must be a non-negative integer");
  }
  return std::optional<uint64_t>(static_cast<uint64_t>(v));
}

Result<std::string> Converter::StringExpr(const Json& s, const std::string& path) {
  std::optional<uint64_t> min_len, max_len;
  GANNET_ASSIGN_OR_RETURN(min_len, Count(s, "minLength", path));
  GANNET_ASSIGN_OR_RETURN(max_len, Count(s, "maxLength", path));
  uint64_t lo = min_len.value_or(0), hi = max_len.value_or(kUnbounded);
  if (lo > hi) return Error(path, "'minLength' is over 'maxLength': no string is valid");
  if (s.contains("pattern") && s.contains("format")) {
    return Error(path, "'pattern' together with 'format' is not supported");
  }
  if (s.contains("pattern") || s.contains("format")) {
    const char* keyword = s.contains("pattern") ? "pattern" : "format";
    if (!s[keyword].is_string())
      return Error(path, std::string("'") + keyword + "' must be a string");
    std::string regex = s[keyword].get<std::string>();
    if (s.contains("format")) {
      std::optional<std::string> p = FormatPattern(regex);
      if (!p) return Error(path, "'format' \"" + regex + "\" is not supported");
      regex = *p;
    }
    RegexLimits rl{.max_pattern_bytes = limits_.max_pattern_bytes,
                   .max_repetition = limits_.max_repetition};
    Result<PatternGbnf> p = PatternToGbnf(regex, "char", rl);
    if (!p.ok()) return Error(path, "'pattern': " + p.status().message());
    if ((min_len && lo > p->min_length) || (max_len && hi < p->max_length)) {
      return Error(path, std::string("'minLength'/'maxLength' together with '") + keyword +
                             "' are supported only where the pattern implies them");
    }
    GANNET_RETURN_IF_ERROR(ChargeRepetition(p->repetition_cost, path, keyword));
    return Rule(keyword, Quote() + " " + (p->expr.empty() ? "" : p->expr + " ") + Quote());
  }
  if (lo > limits_.max_repetition || (hi != kUnbounded && hi > limits_.max_repetition)) {
    const char* keyword = lo > limits_.max_repetition ? "minLength" : "maxLength";
    return Error(path, std::string("'") + keyword + "' is over the limit of " +
                           std::to_string(limits_.max_repetition));
  }
  if (lo == 0 && hi == kUnbounded) return std::string("string");
  if (hi == 0) return Rule("string", Quote() + " " + Quote());
  GANNET_RETURN_IF_ERROR(
      ChargeRepetition(hi == kUnbounded ? lo + 1 : hi, path, max_len ? "maxLength" : "minLength"));
  return Rule("string", Quote() + " char" + RepeatSuffix(lo, hi) + " " + Quote());
}

Result<std::string> Converter::NumberExpr(const Json& s, const std::string& path, bool integer) {
  if (!s.contains("minimum") && !s.contains("maximum") && !s.contains("exclusiveMinimum") &&
      !s.contains("exclusiveMaximum")) {
    return std::string(integer ? "integer" : "number");
  }
  NumberBounds b;
  for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
    if (!s.contains(k)) continue;
    const Json& v = s[k];
    if (v.is_boolean()) {
      return Error(path, std::string("a boolean '") + k + "' (draft 4) is not supported");
    }
    if (!v.is_number() || !std::isfinite(v.get<double>())) {
      return Error(path, std::string("'") + k + "' must be a number");
    }
    b.Add(k, v.get<double>());
  }
  Result<std::string> e = integer ? IntegerInBounds(b) : NumberInBounds(b);
  if (!e.ok()) return Error(path, e.status().message());
  return Rule(integer ? "integer" : "number", *e);
}

// Properties in declaration order, optional ones omissible, in two rules per property: S_i, the
// rest from property i once something was written (each present one after a comma), and T_i, the
// non-empty rest from property i when nothing was written yet (T_i ::= kv_i S_i+1 | T_i+1 while
// property i is optional; the first required property ends the chain).
Result<std::string> Converter::ObjectExpr(const Json& s, const std::string& path, size_t depth) {
  struct Prop {
    std::string name, value;
    bool required = false;
  };
  std::set<std::string> required;
  std::vector<std::string> required_order;
  if (s.contains("required")) {
    if (!s["required"].is_array()) return Error(path, "'required' must be an array of strings");
    for (const Json& r : s["required"]) {
      if (!r.is_string()) return Error(path, "'required' must be an array of strings");
      if (required.insert(r.get<std::string>()).second)
        required_order.push_back(r.get<std::string>());
    }
  }
  std::vector<Prop> props;
  std::vector<std::string> names;
  if (s.contains("properties")) {
    const Json& p = s["properties"];
    if (!p.is_object()) return Error(path, "'properties' must be an object");
    if (p.size() > limits_.max_properties) {
      return Error(path, "'properties' has more than " + std::to_string(limits_.max_properties) +
                             " properties");
    }
    for (const auto& [name, sub] : p.items()) {
      names.push_back(name);
      bool req = required.count(name) != 0;
      if (sub.is_boolean() && !sub.get<bool>()) {
        if (req) return Error(path, "required property '" + name + "' has the schema false");
        continue;  // must be absent
      }
      std::string e;
      GANNET_ASSIGN_OR_RETURN(e, Visit(sub, path + "/properties/" + PointerToken(name), depth + 1));
      props.push_back({name, e, req});
    }
  }
  for (const std::string& r : required_order) {
    if (std::find(names.begin(), names.end(), r) == names.end()) {
      props.push_back({r, "value", true});
      names.push_back(r);
    }
  }
  if (props.size() > limits_.max_properties) {
    return Error(path, "more than " + std::to_string(limits_.max_properties) + " properties");
  }
  std::string extra_value;  // "": no extra properties
  if (s.contains("additionalProperties")) {
    const Json& ap = s["additionalProperties"];
    if (!(ap.is_boolean() && !ap.get<bool>())) {
      GANNET_ASSIGN_OR_RETURN(extra_value, Visit(ap, path + "/additionalProperties", depth + 1));
    }
  } else if (names.empty()) {
    extra_value = "value";
  }
  size_t n_required = 0;
  for (const Prop& p : props) n_required += p.required;
  std::optional<uint64_t> min_props, max_props;
  GANNET_ASSIGN_OR_RETURN(min_props, Count(s, "minProperties", path));
  GANNET_ASSIGN_OR_RETURN(max_props, Count(s, "maxProperties", path));
  if (min_props && *min_props > n_required) {
    return Error(path, "'minProperties' is supported only where the required properties imply it");
  }
  if (max_props && (*max_props < props.size() || !extra_value.empty())) {
    return Error(path,
                 "'maxProperties' is supported only where the declared properties (and "
                 "additionalProperties false) imply it");
  }
  std::string extra;
  if (!extra_value.empty()) {
    std::string key = names.empty() ? std::string("string") : ExtraKey(names);
    extra = Rule("extra", key + " ws \":\" ws " + extra_value + " ws");
  }
  const size_t n = props.size();
  std::vector<std::string> kv(n), rest(n + 1);  // rest[i]: S_i
  rest[n] = extra.empty() ? "" : Rule("rest", "( \",\" ws " + extra + " )*");
  for (size_t i = n; i-- > 0;) {
    std::string key = GbnfLiteral(Json(props[i].name).dump());
    kv[i] = Rule("kv-" + props[i].name, key + " ws \":\" ws " + props[i].value + " ws");
    std::string item = "\",\" ws " + kv[i];
    std::string body = (props[i].required ? item : "( " + item + " )?") +
                       (rest[i + 1].empty() ? "" : " " + rest[i + 1]);
    rest[i] = Rule("rest", body);
  }
  size_t first_required = n;
  for (size_t i = 0; i < n && first_required == n; ++i) {
    if (props[i].required) first_required = i;
  }
  std::string start;  // T_i, from first_required down to 0
  if (first_required < n) {
    start =
        Rule("props", kv[first_required] +
                          (rest[first_required + 1].empty() ? "" : " " + rest[first_required + 1]));
  } else if (!extra.empty()) {
    start = Rule("props", extra + (rest[n].empty() ? "" : " " + rest[n]));
  }
  for (size_t i = std::min(first_required, n); i-- > 0;) {
    std::string here = kv[i] + (rest[i + 1].empty() ? "" : " " + rest[i + 1]);
    start = Rule("props", start.empty() ? here : here + " | " + start);
  }
  std::string body = "\"{\" ws ";
  if (!start.empty()) body += first_required < n ? start + " " : "( " + start + " )? ";
  return Rule("object", body + "\"}\"");
}

// Items: the prefix items in order, then the rest (`items`) within minItems..maxItems. E_i, what
// follows the i-th item, is a rule for each prefix position (no deep nesting of groups).
Result<std::string> Converter::ArrayExpr(const Json& s, const std::string& path, size_t depth) {
  std::vector<std::string> prefix;
  const Json* prefix_json = nullptr;
  std::string prefix_key, rest_key = "items";
  if (s.contains("prefixItems")) {
    prefix_json = &s["prefixItems"];
    prefix_key = "prefixItems";
  } else if (s.contains("items") && s["items"].is_array()) {
    prefix_json = &s["items"];
    prefix_key = "items";
    rest_key = "additionalItems";
  }
  if (prefix_json != nullptr) {
    if (!prefix_json->is_array()) return Error(path, "'prefixItems' must be an array");
    for (size_t i = 0; i < prefix_json->size(); ++i) {
      std::string e;
      GANNET_ASSIGN_OR_RETURN(
          e,
          Visit((*prefix_json)[i], path + "/" + prefix_key + "/" + std::to_string(i), depth + 1));
      prefix.push_back(Rule("item", e + " ws"));
    }
  }
  std::optional<uint64_t> min_items, max_items;
  GANNET_ASSIGN_OR_RETURN(min_items, Count(s, "minItems", path));
  GANNET_ASSIGN_OR_RETURN(max_items, Count(s, "maxItems", path));
  uint64_t lo = min_items.value_or(0), hi = max_items.value_or(kUnbounded);
  const uint64_t n = prefix.size();
  std::string rest;  // "": no items after the prefix
  if (s.contains(rest_key)) {
    const Json& r = s[rest_key];
    if (!(r.is_boolean() && !r.get<bool>())) {
      std::string e;
      GANNET_ASSIGN_OR_RETURN(e, Visit(r, path + "/" + rest_key, depth + 1));
      rest = Rule("item", e + " ws");
    }
  } else if (n == 0 || lo > n) {
    rest = Rule("item", "value ws");
  }
  if (rest.empty()) hi = std::min(hi, n);
  if (lo > hi) return Error(path, "'minItems' is over the items the schema allows");
  if (lo > limits_.max_repetition || (hi != kUnbounded && hi > limits_.max_repetition)) {
    const char* keyword = lo > limits_.max_repetition ? "minItems" : "maxItems";
    return Error(path, std::string("'") + keyword + "' is over the limit of " +
                           std::to_string(limits_.max_repetition));
  }
  if (const Json* u = s.contains("uniqueItems") ? &s["uniqueItems"] : nullptr;
      u != nullptr && *u != false && hi > 1) {
    return Error(path, "'uniqueItems' is not supported");
  }
  if (hi == 0) return Rule("array", "\"[\" ws \"]\"");
  // after[i]: what may follow the i-th item (1-based)
  std::vector<std::string> after(n + 1);
  uint64_t tail_from = std::max<uint64_t>(n, 1);
  std::string tail;
  if (!rest.empty() && hi > tail_from) {
    uint64_t a = lo > tail_from ? lo - tail_from : 0;
    uint64_t b = hi == kUnbounded ? kUnbounded : hi - tail_from;
    GANNET_RETURN_IF_ERROR(ChargeRepetition(b == kUnbounded ? a + 1 : b, path, "maxItems"));
    tail = "( \",\" ws " + rest + " )" + RepeatSuffix(a, b);
  }
  std::string next = tail;                  // after the item at position i
  for (uint64_t i = tail_from; i-- > 1;) {  // i < n: the next is prefix[i] (position i + 1)
    if (i + 1 > hi) {
      next = "";
      continue;
    }
    std::string item = "\",\" ws " + prefix[i] + (next.empty() ? "" : " " + next);
    next = Rule("items", i + 1 <= lo ? item : "( " + item + " )?");
  }
  std::string first = (n > 0 ? prefix[0] : rest) + (next.empty() ? "" : " " + next);
  std::string body = "\"[\" ws " + (lo >= 1 ? first + " " : "( " + first + " )? ") + "\"]\"";
  return Rule("array", body);
}

// The key of an extra property: a string without escapes that is none of `names`, as a trie of
// the names in which each node allows the end (if no name ends there), a child's character, or
// any other character and then anything.
std::string Converter::ExtraKey(const std::vector<std::string>& names) {
  struct Node {
    std::map<uint32_t, size_t> children;
    bool terminal = false;
  };
  std::vector<Node> nodes(1);
  for (const std::string& name : names) {
    std::vector<uint32_t> cps;
    bool spellable = true;
    for (size_t i = 0; i < name.size() && spellable;) {
      uint32_t cp = 0;
      size_t n = DecodeStrict(name, i, &cp);
      spellable = n != 0 && cp >= 0x20 && cp != '"' && cp != '\\';
      cps.push_back(cp);
      i += n ? n : 1;
    }
    if (!spellable) continue;  // a key without escapes cannot spell it anyway
    size_t v = 0;
    for (uint32_t cp : cps) {
      auto it = nodes[v].children.find(cp);
      if (it == nodes[v].children.end()) {
        nodes.push_back({});
        it = nodes[v].children.emplace(cp, nodes.size() - 1).first;
      }
      v = it->second;
    }
    nodes[v].terminal = true;
  }
  // Children have larger ids than their parents: build the rules from the last node back.
  std::vector<std::string> rule(nodes.size());
  for (size_t v = nodes.size(); v-- > 0;) {
    std::vector<std::pair<uint32_t, uint32_t>> excluded = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
    std::string body;
    if (!nodes[v].terminal) body = Quote();
    for (const auto& [cp, child] : nodes[v].children) {
      body += (body.empty() ? "" : " | ") + GbnfClass({{cp, cp}}, false) + " " + rule[child];
      excluded.push_back({cp, cp});
    }
    std::sort(excluded.begin(), excluded.end());
    std::vector<std::pair<uint32_t, uint32_t>> merged;
    for (const auto& r : excluded) {
      if (!merged.empty() && r.first <= merged.back().second + 1) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    body += " | " + GbnfClass(merged, true) + " keychar* " + Quote();
    rule[v] = Rule("key", body);
  }
  return Quote() + " " + rule[0];
}

}  // namespace

Result<std::string> JsonSchemaToGbnf(const nlohmann::ordered_json& schema,
                                     const JsonSchemaLimits& limits) {
  return Converter(schema, limits).Run();
}

Result<std::shared_ptr<const Grammar>> CompileJsonSchema(const nlohmann::ordered_json& schema,
                                                         const JsonSchemaLimits& limits) {
  std::string text;
  GANNET_ASSIGN_OR_RETURN(text, JsonSchemaToGbnf(schema, limits));
  Result<std::shared_ptr<const Grammar>> g = Grammar::Compile(text);
  if (!g.ok()) {
    return Status(g.status().code(),
                  "json schema: the grammar does not compile (a '$ref' that recurses before any "
                  "text?): " +
                      g.status().message());
  }
  return g;
}

std::string JsonObjectGbnf() { return std::string("root ::= object\n") + kPrelude; }

}  // namespace gannet::grammar
