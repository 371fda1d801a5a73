#include "grammar/json_schema.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "grammar/grammar_cache.h"
#include "grammar/json_schema_converter.h"
#include "grammar/json_schema_number.h"
#include "grammar/json_schema_regex.h"
#include "grammar/strict_utf8.h"

namespace gannet::grammar {
namespace json_schema_internal {
namespace {

// The rules every grammar may use. `ws` is nothing, one space, or a newline and an indentation of
// at most 20 spaces or tabs (no blank lines, no runs a model could loop on); `char` one JSON string
// character (no \u escape of a surrogate, so each is one code point); `keychar` one character of
// an extra property's key (no escapes); `frac` a fraction with a non-zero last digit.
const char kPrelude[] = R"g(ws ::= ( " " | "\n" [ \t]{0,20} )?
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

}  // namespace

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

Result<std::string> Converter::Run() {
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

Status Converter::Error(const std::string& path, const std::string& message) const {
  return Status::InvalidArgument("json schema: " + message + " (at #" + path + ")");
}

std::string Converter::NewName(const std::string& hint) {
  std::string name;
  for (char c : hint) {
    if (name.size() >= 24) break;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    name += ok ? c : '_';
  }
  if (name.empty()) name = "r";
  return name + "-" + std::to_string(++counter_);
}

std::string Converter::Rule(const std::string& hint, const std::string& body) {
  auto it = by_body_.find(body);
  if (it != by_body_.end()) return it->second;
  std::string name = NewName(hint);
  bytes_ += name.size() + body.size() + 6;
  rules_.emplace_back(name, body);
  by_body_.emplace(body, name);
  return name;
}

Status Converter::ChargeRepetition(uint64_t n, const std::string& path,
                                   const std::string& keyword) {
  repetition_ += n;
  if (repetition_ > limits_.max_total_repetition) {
    return Error(path, "'" + keyword + "': the schema's repetition bounds add up to more than " +
                           std::to_string(limits_.max_total_repetition));
  }
  return Status::Ok();
}

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
  if (++visits_ > limits_.max_subschemas) {  // each part is copied: bound the work
    return Error(path, "more than " + std::to_string(limits_.max_subschemas) + " subschemas");
  }
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
  if (branches.size() > limits_.max_branches) {
    return Error(path, std::string("'") + key + "' has more than " +
                           std::to_string(limits_.max_branches) + " branches");
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

}  // namespace json_schema_internal

using json_schema_internal::Converter;

Result<std::string> JsonSchemaToGbnf(const nlohmann::ordered_json& schema,
                                     const JsonSchemaLimits& limits) {
  return Converter(schema, limits).Run();
}

Result<std::shared_ptr<const Grammar>> CompileJsonSchema(const nlohmann::ordered_json& schema,
                                                         const JsonSchemaLimits& limits) {
  std::string text;
  GANNET_ASSIGN_OR_RETURN(text, JsonSchemaToGbnf(schema, limits));
  Result<std::shared_ptr<const Grammar>> g = CompileShared(text);
  if (!g.ok()) {
    return Status(g.status().code(),
                  "json schema: the grammar does not compile (a '$ref' that recurses before any "
                  "text?): " +
                      g.status().message());
  }
  return g;
}

std::string JsonObjectGbnf() {
  return std::string("root ::= object\n") + json_schema_internal::kPrelude;
}

}  // namespace gannet::grammar
