// Tool-call formats per model family: detection, prompt set-up and the constraining grammar.
#include "chat/tool_calls.h"

#include "grammar/json_schema.h"

namespace gannet {
namespace {

using Json = nlohmann::ordered_json;

bool Has(std::string_view s, std::string_view what) { return s.find(what) != s.npos; }

// The key a format's call object names its arguments with.
const char* ArgumentsKey(ToolCallFormat format) {
  return format == ToolCallFormat::kLlama3 ? "parameters" : "arguments";
}

// Rewrites every "$ref": "#..." under `schema` to point below `prefix` ("#/$defs/tool_3"), so a
// tool's schema keeps its references once it is placed inside a larger document.
void RebaseRefs(Json* schema, const std::string& prefix) {
  if (schema->is_array()) {
    for (Json& e : *schema) RebaseRefs(&e, prefix);
    return;
  }
  if (!schema->is_object()) return;
  for (auto it = schema->begin(); it != schema->end(); ++it) {
    if (it.key() == "$ref" && it.value().is_string()) {
      const std::string ref = it.value().get<std::string>();
      if (!ref.empty() && ref[0] == '#') it.value() = prefix + ref.substr(1);
    } else {
      RebaseRefs(&it.value(), prefix);
    }
  }
}

// The tools a call may name: all of them, or the named one.
std::vector<size_t> AllowedTools(const ToolSpec& spec) {
  std::vector<size_t> out;
  for (size_t i = 0; i < spec.tools.size(); ++i) {
    if (spec.choice != ToolChoiceMode::kNamed || spec.tools[i].name == spec.named) out.push_back(i);
  }
  return out;
}

// {"$defs": {"tool_i": parameters...}, <call>} where <call> is one call object
// {"name": const, "<args>": $ref} or the anyOf of them.
Json CallObjectSchema(ToolCallFormat format, const ToolSpec& spec, Json* defs) {
  Json alts = Json::array();
  for (size_t i : AllowedTools(spec)) {
    const std::string def = "tool_" + std::to_string(i);
    Json params = spec.tools[i].parameters;
    // Arguments are an object: a schema that says nothing of the type (e.g. {}) means any object.
    const bool typed = params.contains("type") || params.contains("$ref") ||
                       params.contains("anyOf") || params.contains("oneOf") ||
                       params.contains("allOf") || params.contains("const") ||
                       params.contains("enum");
    if (params.is_object() && !typed) params["type"] = "object";
    RebaseRefs(&params, "#/$defs/" + def);
    (*defs)[def] = std::move(params);
    Json props = Json::object();
    props["name"] = Json{{"const", spec.tools[i].name}};
    props[ArgumentsKey(format)] = Json{{"$ref", "#/$defs/" + def}};
    alts.push_back(Json{{"type", "object"},
                        {"properties", std::move(props)},
                        {"required", Json::array({"name", ArgumentsKey(format)})}});
  }
  if (alts.size() == 1) return alts[0];
  return Json{{"anyOf", std::move(alts)}};
}

bool Parallel(ToolCallFormat format, const ToolSpec& spec) {
  // Llama 3.x templates take one call per message; a named function is one call.
  return spec.parallel && spec.choice != ToolChoiceMode::kNamed &&
         format != ToolCallFormat::kLlama3;
}

Result<std::string> SchemaGbnf(Json schema, Json defs) {
  if (!defs.empty()) schema["$defs"] = std::move(defs);
  return grammar::JsonSchemaToGbnf(schema);
}

Result<std::string> GenericGbnf(const ToolSpec& spec) {
  Json defs = Json::object();
  Json items = CallObjectSchema(ToolCallFormat::kGeneric, spec, &defs);
  Json array = Json{{"type", "array"}, {"items", std::move(items)}, {"minItems", 1}};
  if (!Parallel(ToolCallFormat::kGeneric, spec)) array["maxItems"] = 1;
  Json calls = Json{{"type", "object"},
                    {"properties", Json{{"tool_calls", std::move(array)}}},
                    {"required", Json::array({"tool_calls"})}};
  if (spec.choice != ToolChoiceMode::kAuto) return SchemaGbnf(std::move(calls), std::move(defs));
  Json response = Json{{"type", "object"},
                       {"properties", Json{{"response", Json{{"type", "string"}}}}},
                       {"required", Json::array({"response"})}};
  return SchemaGbnf(Json{{"anyOf", Json::array({std::move(calls), std::move(response)})}},
                    std::move(defs));
}

// A marker in GBNF: the token reference of a control token, else the literal text.
std::string MarkerGbnf(const ToolMarkerTokens& markers, std::string_view text) {
  const int32_t id = markers.Find(text);
  if (id >= 0) return "<[" + std::to_string(id) + "]>";
  std::string lit = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\' || c == '[' || c == ']') lit.push_back('\\');
    lit.push_back(c);
  }
  return lit + "\"";
}

// The converter's grammar with its start rule renamed, so a wrapper rule can use it. The
// converter writes the start rule first as "root ::= ..." and names no other rule "root".
std::string RenameRoot(const std::string& gbnf, const std::string& name) {
  static constexpr std::string_view kRoot = "root ::= ";
  return name + " ::= " + gbnf.substr(kRoot.size());
}

}  // namespace

const char* ToolCallFormatName(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kHermes:
      return "hermes";
    case ToolCallFormat::kLlama3:
      return "llama3";
    case ToolCallFormat::kMistral:
      return "mistral";
    case ToolCallFormat::kGeneric:
      break;
  }
  return "generic";
}

ToolCallFormat DetectToolCallFormat(std::string_view src) {
  if (Has(src, "<tool_call>")) return ToolCallFormat::kHermes;
  if (Has(src, "[TOOL_CALLS]")) return ToolCallFormat::kMistral;
  if (Has(src, "<|start_header_id|>") && (Has(src, "\"parameters\"") || Has(src, "<|python_tag|>")))
    return ToolCallFormat::kLlama3;
  return ToolCallFormat::kGeneric;
}

ToolCallFormat DetectToolCallFormat(const ChatTemplate& tmpl) {
  if (tmpl.is_fallback()) return ToolCallFormat::kGeneric;
  return DetectToolCallFormat(tmpl.source());
}

std::vector<std::string_view> ToolCallMarkers(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kHermes:
      return {"<tool_call>", "</tool_call>"};
    case ToolCallFormat::kLlama3:
      return {"<|python_tag|>"};
    case ToolCallFormat::kMistral:
      return {"[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"};
    case ToolCallFormat::kGeneric:
      break;
  }
  return {};
}

int32_t ToolMarkerTokens::Find(std::string_view marker) const {
  for (const auto& [text, id] : tokens) {
    if (text == marker) return id;
  }
  return -1;
}

std::vector<int32_t> ToolMarkerTokens::ids() const {
  std::vector<int32_t> out;
  for (const auto& t : tokens) out.push_back(t.second);
  return out;
}

ToolMarkerTokens FindToolMarkerTokens(ToolCallFormat format, const Tokenizer& tok) {
  ToolMarkerTokens out;
  for (std::string_view marker : ToolCallMarkers(format)) {
    const std::optional<int32_t> id = tok.FindToken(marker);
    if (!id || tok.IsEndOfGeneration(*id)) continue;
    // Only what the detokenizer drops: a user-defined marker (Qwen's <tool_call>) is text already.
    if (!tok.TokenToPiece(*id, /*render_special=*/false).empty()) continue;
    out.tokens.emplace_back(std::string(marker), *id);
  }
  return out;
}

bool ToolOutputLazy(ToolCallFormat format, const ToolSpec& spec) {
  return spec.choice == ToolChoiceMode::kAuto && format != ToolCallFormat::kGeneric;
}

bool ToolOutputConstrained(ToolCallFormat format, const ToolSpec& spec) {
  switch (spec.choice) {
    case ToolChoiceMode::kNone:
      return false;
    case ToolChoiceMode::kAuto:
      return format == ToolCallFormat::kGeneric;
    case ToolChoiceMode::kRequired:
    case ToolChoiceMode::kNamed:
      return true;
  }
  return false;
}

Result<std::string> ToolCallGbnf(ToolCallFormat format, const ToolSpec& spec,
                                 const ToolMarkerTokens& markers) {
  if (!ToolOutputConstrained(format, spec)) return std::string();
  if (format == ToolCallFormat::kGeneric) return GenericGbnf(spec);
  Json defs = Json::object();
  Json call = CallObjectSchema(format, spec, &defs);
  std::string json;
  GANNET_ASSIGN_OR_RETURN(json, SchemaGbnf(std::move(call), std::move(defs)));
  const bool parallel = Parallel(format, spec);
  std::string root;
  switch (format) {
    case ToolCallFormat::kHermes:
      root = "root ::= tool-call-block" +
             std::string(parallel ? " ( \"\\n\" tool-call-block )*" : "") +
             "\ntool-call-block ::= " + MarkerGbnf(markers, "<tool_call>") +
             " \"\\n\" tool-call-json \"\\n\" " + MarkerGbnf(markers, "</tool_call>") + "\n";
      break;
    case ToolCallFormat::kMistral:
      root = "root ::= " + MarkerGbnf(markers, "[TOOL_CALLS]") + " \"[\" tool-call-json" +
             std::string(parallel ? " ( \", \" tool-call-json )*" : "") + " \"]\"\n";
      break;
    case ToolCallFormat::kLlama3:
      // <|python_tag|> may open the call where the vocabulary has it as a control token.
      root = "root ::= " +
             (markers.Find("<|python_tag|>") >= 0
                  ? "( " + MarkerGbnf(markers, "<|python_tag|>") + " )? "
                  : std::string()) +
             "tool-call-json\n";
      break;
    default:
      root = "root ::= tool-call-json\n";
      break;
  }
  return root + RenameRoot(json, "tool-call-json");
}

Result<std::string> ToolCallLazyGbnf(ToolCallFormat format, const ToolSpec& spec,
                                     const ToolMarkerTokens& markers) {
  if (!ToolOutputLazy(format, spec)) return std::string();
  ToolSpec calls = spec;
  calls.choice = ToolChoiceMode::kRequired;
  return ToolCallGbnf(format, calls, markers);
}

grammar::GrammarTriggers ToolCallTriggers(ToolCallFormat format, const ToolMarkerTokens& markers) {
  grammar::GrammarTriggers t;
  std::string_view marker;
  switch (format) {
    case ToolCallFormat::kHermes:
      marker = "<tool_call>";
      break;
    case ToolCallFormat::kMistral:
      marker = "[TOOL_CALLS]";
      break;
    case ToolCallFormat::kLlama3:
      // A custom tool's call is the JSON alone; <|python_tag|> only where it is a control token.
      t.start_words.push_back("{\"name\"");
      if (markers.Find("<|python_tag|>") >= 0) t.tokens.push_back(markers.Find("<|python_tag|>"));
      return t;
    case ToolCallFormat::kGeneric:
      return t;
  }
  if (const int32_t id = markers.Find(marker); id >= 0) {
    t.tokens.push_back(id);
  } else {
    t.words.emplace_back(marker);
  }
  return t;
}

}  // namespace gannet
