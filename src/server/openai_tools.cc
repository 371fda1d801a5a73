#include "server/openai_tools.h"

#include <set>

#include "grammar/json_schema.h"

namespace gannet::server {
namespace {

using Json = nlohmann::ordered_json;

ApiError Invalid(std::string param, std::string message) {
  return ApiError{.http_status = 400, .message = std::move(message), .param = std::move(param)};
}

const Json* Field(const Json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<ApiError> ReadTool(const Json& t, size_t i, ToolDefinition* out) {
  const std::string at = "tools[" + std::to_string(i) + "]";
  if (!t.is_object()) return Invalid(at, "Invalid '" + at + "': expected an object.");
  const Json* type = Field(t, "type");
  if (type == nullptr || !type->is_string() || *type != "function") {
    return Invalid(at + ".type", "Invalid '" + at +
                                     ".type': expected 'function' (the only tool "
                                     "type supported).");
  }
  const Json* fn = Field(t, "function");
  if (fn == nullptr || !fn->is_object())
    return Invalid(at + ".function", "Missing required parameter: '" + at + ".function'.");
  const Json* name = Field(*fn, "name");
  if (name == nullptr || !name->is_string())
    return Invalid(at + ".function.name",
                   "Missing required parameter: '" + at + ".function.name' (a string).");
  out->name = name->get<std::string>();
  if (!ValidName(out->name)) {
    return Invalid(at + ".function.name", "Invalid '" + at + ".function.name': '" + out->name +
                                              "' must be 1 to 64 characters of a-z, A-Z, 0-9, "
                                              "underscores and dashes.");
  }
  if (const Json* d = Field(*fn, "description"); d != nullptr) {
    if (!d->is_string())
      return Invalid(at + ".function.description",
                     "Invalid '" + at + ".function.description': expected a string.");
    out->description = d->get<std::string>();
  }
  if (const Json* s = Field(*fn, "strict"); s != nullptr && !s->is_boolean())
    return Invalid(at + ".function.strict", "Invalid '" + at +
                                                ".function.strict': expected a "
                                                "boolean.");
  out->parameters = Json{{"type", "object"}, {"properties", Json::object()}};
  if (const Json* p = Field(*fn, "parameters"); p != nullptr) {
    if (!p->is_object())
      return Invalid(at + ".function.parameters",
                     "Invalid '" + at + ".function.parameters': expected a JSON Schema object.");
    if (const Json* type = Field(*p, "type"); type != nullptr && *type != "object") {
      return Invalid(at + ".function.parameters",
                     "Invalid '" + at +
                         ".function.parameters': the arguments are an object; "
                         "'type' must be \"object\".");
    }
    // The converter bounds its own work; its message names the keyword and where it is.
    Result<std::string> gbnf = grammar::JsonSchemaToGbnf(*p);
    if (!gbnf.ok()) {
      return Invalid(at + ".function.parameters",
                     "Invalid '" + at + ".function.parameters': " + gbnf.status().message());
    }
    out->parameters = *p;
  }
  out->raw = t;
  return std::nullopt;
}

std::optional<ApiError> ReadToolChoice(const Json* v, ToolSpec* spec) {
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) {
    const std::string s = v->get<std::string>();
    if (s == "none")
      spec->choice = ToolChoiceMode::kNone;
    else if (s == "auto")
      spec->choice = ToolChoiceMode::kAuto;
    else if (s == "required")
      spec->choice = ToolChoiceMode::kRequired;
    else
      return Invalid("tool_choice", "Invalid value for 'tool_choice': '" + s +
                                        "'. Supported values are: 'none', 'auto', 'required' "
                                        "or {\"type\": \"function\", \"function\": {\"name\": "
                                        "...}}.");
    return std::nullopt;
  }
  const Json* fn = v->is_object() ? Field(*v, "function") : nullptr;
  const Json* name = fn != nullptr && fn->is_object() ? Field(*fn, "name") : nullptr;
  const Json* type = v->is_object() ? Field(*v, "type") : nullptr;
  if (type == nullptr || *type != "function" || name == nullptr || !name->is_string()) {
    return Invalid("tool_choice",
                   "Invalid 'tool_choice': expected 'none', 'auto', 'required' or {\"type\": "
                   "\"function\", \"function\": {\"name\": <one of the tools>}}.");
  }
  spec->choice = ToolChoiceMode::kNamed;
  spec->named = name->get<std::string>();
  for (const ToolDefinition& t : spec->tools) {
    if (t.name == spec->named) return std::nullopt;
  }
  return Invalid("tool_choice", "Invalid 'tool_choice': function '" + spec->named +
                                    "' is not one of the 'tools'.");
}

// Assistant tool_calls in the history: what the templates read must be there.
std::optional<ApiError> CheckHistory(const Json& messages) {
  if (!messages.is_array()) return std::nullopt;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json* calls = messages[i].is_object() ? Field(messages[i], "tool_calls") : nullptr;
    if (calls == nullptr) continue;
    const std::string at = "messages[" + std::to_string(i) + "].tool_calls";
    if (!calls->is_array()) return Invalid(at, "Invalid '" + at + "': expected an array.");
    for (size_t k = 0; k < calls->size(); ++k) {
      const Json& c = (*calls)[k];
      const std::string ck = at + "[" + std::to_string(k) + "]";
      const Json* fn = c.is_object() ? Field(c, "function") : nullptr;
      const Json* name = fn != nullptr && fn->is_object() ? Field(*fn, "name") : nullptr;
      if (name == nullptr || !name->is_string())
        return Invalid(ck + ".function.name",
                       "Missing required parameter: '" + ck + ".function.name' (a string).");
      const Json* args = Field(*fn, "arguments");
      // OpenAI sends JSON text; structured values are passed to the template as they are.
      if (args != nullptr && !args->is_string() && !args->is_structured())
        return Invalid(ck + ".function.arguments",
                       "Invalid '" + ck + ".function.arguments': expected a JSON string.");
      if (const Json* id = Field(c, "id"); id != nullptr && !id->is_string())
        return Invalid(ck + ".id", "Invalid '" + ck + ".id': expected a string.");
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> ReadToolFields(const Json& j, CompletionRequest* out) {
  if (Field(j, "functions") != nullptr || Field(j, "function_call") != nullptr) {
    const char* which = Field(j, "functions") != nullptr ? "functions" : "function_call";
    return ApiError{.message = std::string("'") + which +
                               "' (deprecated by OpenAI) is not supported; send 'tools' and "
                               "'tool_choice' instead.",
                    .param = which,
                    .code = "unsupported_parameter"};
  }
  if (const Json* messages = Field(j, "messages"); messages != nullptr) {
    if (auto e = CheckHistory(*messages)) return e;
  }
  const Json* tools = Field(j, "tools");
  const Json* choice = Field(j, "tool_choice");
  const Json* parallel = Field(j, "parallel_tool_calls");
  if (parallel != nullptr && !parallel->is_boolean())
    return Invalid("parallel_tool_calls", "Invalid 'parallel_tool_calls': expected a boolean.");
  if (tools == nullptr || (tools->is_array() && tools->empty())) {
    if (choice != nullptr)
      return Invalid("tool_choice",
                     "Invalid value for 'tool_choice': 'tool_choice' is only "
                     "allowed when 'tools' are specified.");
    return std::nullopt;
  }
  if (!tools->is_array()) return Invalid("tools", "Invalid 'tools': expected an array.");
  if (tools->size() > kMaxTools)
    return Invalid("tools", "Invalid 'tools': at most " + std::to_string(kMaxTools) + " tools.");
  ToolSpec spec;
  std::set<std::string> names;
  for (size_t i = 0; i < tools->size(); ++i) {
    ToolDefinition t;
    if (auto e = ReadTool((*tools)[i], i, &t)) return e;
    if (!names.insert(t.name).second) {
      const std::string at = "tools[" + std::to_string(i) + "].function.name";
      return Invalid(
          at, "Invalid '" + at + "': the function name '" + t.name + "' is used by two tools.");
    }
    spec.tools.push_back(std::move(t));
  }
  if (auto e = ReadToolChoice(choice, &spec)) return e;
  spec.parallel = parallel == nullptr || parallel->get<bool>();
  out->tools = std::move(spec);
  return std::nullopt;
}

}  // namespace gannet::server
