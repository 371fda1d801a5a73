// Chat templates: a conversation (OpenAI-style messages) -> the prompt text a model was trained
// on, by the Jinja template the model ships (GGUF `tokenizer.chat_template`), rendered the way
// Hugging Face transformers renders it (trim_blocks, lstrip_blocks, loopcontrols, tojson with
// ensure_ascii=False, raise_exception, strftime_now).
//
//   auto tmpl = ChatTemplate::FromGguf(file);             // or ChatTemplate::Parse(source)
//   ChatRenderInput in{.messages = {{.role = "user", .content = "Hi"}}, .add_generation_prompt =
//   true,
//                      .bos_token = "<bos>", .eos_token = "<eos>"};
//   Result<std::string> prompt = tmpl->Render(in);
//
// Templates come from model files and are untrusted: the interpreter reaches no file, clock or
// environment, and every resource is bounded (ChatTemplateLimits); a template that fails, rejects
// the conversation (raise_exception) or exceeds a limit yields an error Status, never a crash.
// Thread-safety: a ChatTemplate is immutable after Parse; Render may be called concurrently.
#pragma once

#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "jinja/interpreter.h"

namespace gannet {

class GgufFile;

using ChatTemplateLimits = jinja::RenderLimits;

// One part of a multi-part content ({"type": "text", "text": ...}; other types are passed through).
struct ChatContentPart {
  std::string type = "text";
  std::string text;
};

struct ChatMessage {
  std::string role;
  // Exactly one representation reaches the template: `parts` when non-empty, else `content`
  // (a string), or None when content_is_null (an assistant message that only calls tools).
  std::string content;
  std::vector<ChatContentPart> parts;
  bool content_is_null = false;
  // Optional fields, present in the message dict only when set (templates test `'x' in message`).
  std::optional<std::string> name;
  std::optional<std::string> tool_call_id;
  std::optional<nlohmann::ordered_json> tool_calls;  // an array, passed through as values
  nlohmann::ordered_json extra =
      nlohmann::ordered_json::object();  // more keys (e.g. reasoning_content)
};

struct ChatRenderInput {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
  std::optional<nlohmann::ordered_json> tools;  // absent: `tools` is undefined in the template
  // More template variables (e.g. enable_thinking, date_string); names above take precedence.
  nlohmann::ordered_json extra_variables = nlohmann::ordered_json::object();
  // The time strftime_now() formats (UTC); the caller decides, so rendering is reproducible.
  std::time_t now = 0;
  ChatTemplateLimits limits;
};

class ChatTemplate {
 public:
  // Parses a template. Syntax errors and unsupported tags name `name`, the line and the column.
  static Result<ChatTemplate> Parse(std::string_view source, std::string name = "chat_template");
  // The model's `tokenizer.chat_template`, or the built-in fallback when the file has none.
  // A chat_template key of another type, or a template that does not parse, is an error.
  static Result<ChatTemplate> FromGguf(const GgufFile& file);
  // The fallback: ChatML (<|im_start|>role\ncontent<|im_end|>\n per message, then
  // "<|im_start|>assistant\n" when add_generation_prompt), llama.cpp's default too. Text parts
  // of a multi-part content are concatenated.
  static const char* FallbackSource();

  Result<std::string> Render(const ChatRenderInput& input) const;

  const std::string& source() const { return source_; }
  const std::string& name() const { return tmpl_->name; }
  bool is_fallback() const { return is_fallback_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::Template> tmpl_;
  bool is_fallback_ = false;
};

// The chat template from a Jinja file (--chat-template), or when `path` is empty the model's own
// tokenizer.chat_template (ChatML when the file has none). Parse errors name the file and line.
Result<ChatTemplate> LoadChatTemplate(const std::string& path, const GgufFile& file);

// JSON (objects, arrays, strings, numbers, booleans, null) -> template values, keys in document
// order (templates print dicts with tojson and repr, where order shows). Depth-bounded.
Result<jinja::Value> JsonToValue(const nlohmann::ordered_json& j);
// An OpenAI-style message object ({"role", "content" (string, null or parts), "name",
// "tool_call_id", "tool_calls", anything else into `extra`}) -> ChatMessage.
Result<ChatMessage> ChatMessageFromJson(const nlohmann::ordered_json& j);

}  // namespace gannet
