// libFuzzer target: the Jinja lexer, parser and interpreter (jinja/) through ChatTemplate, which is
// how templates from model files reach them. The input is a template source; it is parsed and, when
// it parses, rendered with a fixed conversation (system, user, an assistant tool call, a tool
// answer, multi-part content) and tools, under small render limits so loops and string growth hit
// their bounds quickly. Seeds: the chat templates of tests/fixtures/chat_templates.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "chat/template.h"

namespace {

const gannet::ChatRenderInput& Conversation() {
  static const gannet::ChatRenderInput* input = [] {
    auto* in = new gannet::ChatRenderInput;
    const char* messages = R"([
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": "What is the weather in Paris?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "weather", "arguments": {"city": "Paris", "days": [1, 2]}}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
      {"role": "user", "content": [{"type": "text", "text": "And "}, {"type": "text", "text": "Rome?"}]},
      {"role": "assistant", "content": "Sunny.", "reasoning_content": "It is summer."}
    ])";
    for (const auto& m : nlohmann::ordered_json::parse(messages)) {
      in->messages.push_back(gannet::ChatMessageFromJson(m).value());
    }
    in->tools = nlohmann::ordered_json::parse(
        R"([{"type": "function", "function": {"name": "weather", "description": "Forecast",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
    in->bos_token = "<bos>";
    in->eos_token = "<eos>";
    in->extra_variables["enable_thinking"] = true;
    in->limits = gannet::ChatTemplateLimits{.max_output_bytes = 1 << 16,
                                            .max_string_bytes = 1 << 16,
                                            .max_collection_size = 1 << 12,
                                            .max_loop_iterations = 1 << 14,
                                            .max_call_depth = 16,
                                            .max_value_depth = 32,
                                            .max_work = 1 << 20};
    return in;
  }();
  return *input;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view source(reinterpret_cast<const char*>(data), size);
  gannet::Result<gannet::ChatTemplate> tmpl = gannet::ChatTemplate::Parse(source, "fuzz");
  if (!tmpl.ok()) return 0;
  gannet::Result<std::string> out = tmpl->Render(Conversation());
  if (out.ok() && out->size() > Conversation().limits.max_output_bytes) __builtin_trap();
  return 0;
}
