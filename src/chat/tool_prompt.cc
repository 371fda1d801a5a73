// How a request's tools and its tool-call history reach the chat template (chat/tool_calls.h).
#include <map>
#include <random>

#include "chat/tool_calls.h"

namespace gannet {
namespace {

using Json = nlohmann::ordered_json;

// function.arguments as an object when it is JSON text of one.
void ArgumentsToObject(Json* call) {
  if (!call->is_object()) return;
  auto fn = call->find("function");
  if (fn == call->end() || !fn->is_object()) return;
  auto args = fn->find("arguments");
  if (args == fn->end() || !args->is_string()) return;
  Json parsed = Json::parse(args->get<std::string>(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) *args = std::move(parsed);
}

std::string TextOf(const ChatMessage& m) {
  std::string text = m.content;
  for (const ChatContentPart& p : m.parts) text += p.text;
  return text;
}

std::string ToolsDescription(const ToolSpec& spec) {
  Json list = Json::array();
  for (const ToolDefinition& t : spec.tools) {
    if (spec.choice == ToolChoiceMode::kNamed && t.name != spec.named) continue;
    Json entry = Json{{"name", t.name}};
    if (!t.description.empty()) entry["description"] = t.description;
    entry["parameters"] = t.parameters;
    list.push_back(std::move(entry));
  }
  std::string text =
      "You can call the following tools. Each is given with its name, what it does and the JSON "
      "Schema of its arguments:\n" +
      list.dump(2, ' ', false, Json::error_handler_t::replace) + "\n\n";
  const std::string call =
      "{\"tool_calls\": [{\"name\": <tool name>, \"arguments\": <arguments object>}]}";
  switch (spec.choice) {
    case ToolChoiceMode::kAuto:
      text += "Answer with one JSON object: " + call +
              " to call tools, or {\"response\": <your answer as a string>} to answer directly. "
              "After a call, the results come back in the next message.";
      break;
    case ToolChoiceMode::kNamed:
      text += "Call the tool '" + spec.named + "': answer with one JSON object " + call + ".";
      break;
    default:
      text += "Call at least one tool: answer with one JSON object " + call + ".";
      break;
  }
  return text;
}

// Generic format: earlier calls as the JSON the model answers with, results as user messages.
void RewriteGenericHistory(std::vector<ChatMessage>* messages) {
  std::map<std::string, std::string> names;  // call id -> function name
  for (ChatMessage& m : *messages) {
    if (m.role == "assistant" && m.tool_calls && m.tool_calls->is_array()) {
      Json calls = Json::array();
      for (const Json& c : *m.tool_calls) {
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) continue;
        const Json& fn = c["function"];
        Json call = Json{{"name", fn.value("name", Json(""))},
                         {"arguments", fn.value("arguments", Json::object())}};
        if (c.contains("id") && c["id"].is_string() && call["name"].is_string())
          names[c["id"].get<std::string>()] = call["name"].get<std::string>();
        calls.push_back(std::move(call));
      }
      m.content = Json{{"tool_calls", std::move(calls)}}.dump(-1, ' ', false,
                                                              Json::error_handler_t::replace);
      m.parts.clear();
      m.content_is_null = false;
      m.tool_calls.reset();
    } else if (m.role == "tool") {
      std::string head = "Result of the tool call";
      if (m.tool_call_id) {
        auto it = names.find(*m.tool_call_id);
        if (it != names.end()) head += " to '" + it->second + "'";
        head += " (id " + *m.tool_call_id + ")";
      }
      m.role = "user";
      m.content = head + ":\n" + TextOf(m);
      m.parts.clear();
      m.tool_call_id.reset();
    }
  }
}

}  // namespace

void NormalizeToolCallHistory(std::vector<ChatMessage>* messages) {
  for (ChatMessage& m : *messages) {
    if (!m.tool_calls || !m.tool_calls->is_array()) continue;
    for (Json& call : *m.tool_calls) ArgumentsToObject(&call);
  }
}

void PrepareToolPrompt(ToolCallFormat format, const ToolSpec* spec, ChatRenderInput* input,
                       ToolPromptPlacement placement) {
  NormalizeToolCallHistory(&input->messages);
  if (format != ToolCallFormat::kGeneric) {
    if (spec != nullptr && spec->choice != ToolChoiceMode::kNone) {
      Json tools = Json::array();
      for (const ToolDefinition& t : spec->tools) tools.push_back(t.raw);
      input->tools = std::move(tools);
    }
    return;
  }
  RewriteGenericHistory(&input->messages);
  if (spec == nullptr || spec->choice == ToolChoiceMode::kNone) return;
  const std::string description = ToolsDescription(*spec);
  std::vector<ChatMessage>& ms = input->messages;
  if (placement == ToolPromptPlacement::kFirstUserMessage) {
    for (ChatMessage& m : ms) {
      if (m.role != "user") continue;
      m.content = description + "\n\n" + TextOf(m);
      m.parts.clear();
      return;
    }
    ms.insert(ms.begin(), ChatMessage{.role = "user", .content = description});
    return;
  }
  if (!ms.empty() && (ms[0].role == "system" || ms[0].role == "developer")) {
    ms[0].content = TextOf(ms[0]) + "\n\n" + description;
    ms[0].parts.clear();
    ms[0].content_is_null = false;
  } else {
    ms.insert(ms.begin(), ChatMessage{.role = "system", .content = description});
  }
}

std::string NewToolCallId(ToolCallFormat format) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const bool mistral = format == ToolCallFormat::kMistral;
  std::string id = mistral ? "" : "call_";
  for (int i = 0; i < (mistral ? 9 : 24); ++i)
    id.push_back(kAlphabet[rng() % (sizeof(kAlphabet) - 1)]);
  return id;
}

}  // namespace gannet
