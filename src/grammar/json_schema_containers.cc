// Objects and arrays of the JSON Schema converter (json_schema_converter.h).
#include <algorithm>
#include <map>
#include <set>

#include "grammar/json_schema_converter.h"
#include "grammar/strict_utf8.h"

namespace gannet::grammar::json_schema_internal {

Status Converter::ReadProperties(const Json& s, const std::string& path, size_t depth,
                                 std::vector<Property>* props, std::string* extra_value) {
  std::set<std::string> required;
  std::vector<std::string> required_order;
  if (s.contains("required")) {
    if (!s["required"].is_array()) return Error(path, "'required' must be an array of strings");
    for (const Json& r : s["required"]) {
      if (!r.is_string()) return Error(path, "'required' must be an array of strings");
      if (required.insert(r.get<std::string>()).second) {
        required_order.push_back(r.get<std::string>());
      }
    }
  }
  std::set<std::string> names;
  if (s.contains("properties")) {
    const Json& p = s["properties"];
    if (!p.is_object()) return Error(path, "'properties' must be an object");
    if (p.size() > limits_.max_properties) {
      return Error(path, "'properties' has more than " + std::to_string(limits_.max_properties) +
                             " properties");
    }
    for (const auto& [name, sub] : p.items()) {
      names.insert(name);
      bool req = required.count(name) != 0;
      if (sub.is_boolean() && !sub.get<bool>()) {
        if (req) return Error(path, "required property '" + name + "' has the schema false");
        continue;  // must be absent
      }
      std::string e;
      GANNET_ASSIGN_OR_RETURN(e, Visit(sub, path + "/properties/" + PointerToken(name), depth + 1));
      props->push_back({name, e, req});
    }
  }
  for (const std::string& r : required_order) {
    if (names.insert(r).second) props->push_back({r, "value", true});
  }
  if (props->size() > limits_.max_properties) {
    return Error(path, "more than " + std::to_string(limits_.max_properties) + " properties");
  }
  extra_value->clear();
  if (s.contains("additionalProperties")) {
    const Json& ap = s["additionalProperties"];
    if (!(ap.is_boolean() && !ap.get<bool>())) {
      GANNET_ASSIGN_OR_RETURN(*extra_value, Visit(ap, path + "/additionalProperties", depth + 1));
    }
  } else if (names.empty()) {
    *extra_value = "value";
  }
  size_t n_required = 0;
  for (const Property& p : *props) n_required += p.required;
  std::optional<uint64_t> min_props, max_props;
  GANNET_ASSIGN_OR_RETURN(min_props, Count(s, "minProperties", path));
  GANNET_ASSIGN_OR_RETURN(max_props, Count(s, "maxProperties", path));
  if (min_props && *min_props > n_required) {
    return Error(path, "'minProperties' is supported only where the required properties imply it");
  }
  if (max_props && (*max_props < props->size() || !extra_value->empty())) {
    return Error(path,
                 "'maxProperties' is supported only where the declared properties (and "
                 "additionalProperties false) imply it");
  }
  return Status::Ok();
}

Result<std::string> Converter::ObjectExpr(const Json& s, const std::string& path, size_t depth) {
  std::vector<Property> props;
  std::string extra_value;
  GANNET_RETURN_IF_ERROR(ReadProperties(s, path, depth, &props, &extra_value));
  std::string extra;  // the rule of one extra property
  if (!extra_value.empty()) {
    std::vector<std::string> names;
    for (const Property& p : props) names.push_back(p.name);
    if (s.contains("properties")) {  // names whose schema is false must not appear either
      for (const auto& [name, sub] : s["properties"].items()) names.push_back(name);
    }
    std::string key = names.empty() ? std::string("string") : ExtraKey(names);
    extra = Rule("extra", key + " ws \":\" ws " + extra_value + " ws");
  }
  return ObjectRules(props, extra);
}

// Properties in declaration order, optional ones omissible, in two rules per property: S_i, the
// rest from property i once something was written (each present one after a comma), and T_i, the
// non-empty rest from property i when nothing was written yet (T_i ::= kv_i S_i+1 | T_i+1 while
// property i is optional; the first required property ends the chain). Extra properties come
// after the declared ones.
std::string Converter::ObjectRules(const std::vector<Property>& props, const std::string& extra) {
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
  auto then_rest = [&](size_t i) { return rest[i].empty() ? "" : " " + rest[i]; };
  std::string start;  // T_i, from first_required down to 0
  if (first_required < n) {
    start = Rule("props", kv[first_required] + then_rest(first_required + 1));
  } else if (!extra.empty()) {
    start = Rule("props", extra + then_rest(n));
  }
  for (size_t i = std::min(first_required, n); i-- > 0;) {
    std::string here = kv[i] + then_rest(i + 1);
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

}  // namespace gannet::grammar::json_schema_internal
