// ChatTemplate: Hugging Face's apply_chat_template(..., tokenize=False) on the safe interpreter.
#include "chat/template.h"

#include <cstdio>

#include "formats/gguf.h"

namespace gannet {

namespace {

constexpr int kMaxJsonDepth = 64;

// ChatML, written in the template language itself (the interpreter renders it like any other).
constexpr const char* kFallback =
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
    "{%- if message['content'] is string -%}\n"
    "{{- message['content'] -}}\n"
    "{%- elif message['content'] is not none -%}\n"
    "{%- for part in message['content'] if part['type'] == 'text' -%}{{- part['text'] -}}{%- "
    "endfor -%}\n"
    "{%- endif -%}\n"
    "{{- '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";

Result<jinja::Value> FromJson(const nlohmann::ordered_json& j, int depth) {
  using jinja::Value;
  if (depth > kMaxJsonDepth)
    return Status::OutOfRange("JSON value nested deeper than " + std::to_string(kMaxJsonDepth));
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::None();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX))
        return Status::OutOfRange("integer " + std::to_string(u) + " too large");
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::Str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      jinja::List items;
      for (const auto& e : j) {
        GANNET_ASSIGN_OR_RETURN(Value v, FromJson(e, depth + 1));
        items.push_back(std::move(v));
      }
      return Value::MakeList(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      jinja::Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) {
        GANNET_ASSIGN_OR_RETURN(Value v, FromJson(it.value(), depth + 1));
        d.items.emplace_back(it.key(), std::move(v));
      }
      return Value::MakeDict(std::move(d));
    }
    default:
      return Status::InvalidArgument("unsupported JSON value (binary or discarded)");
  }
}

Result<jinja::Value> MessageValue(const ChatMessage& m) {
  using jinja::Value;
  jinja::Dict d;
  d.items.emplace_back("role", Value::Str(m.role));
  if (!m.parts.empty()) {
    jinja::List parts;
    for (const ChatContentPart& p : m.parts) {
      jinja::Dict part;
      part.items.emplace_back("type", Value::Str(p.type));
      if (p.type == "text") part.items.emplace_back("text", Value::Str(p.text));
      parts.push_back(Value::MakeDict(std::move(part)));
    }
    d.items.emplace_back("content", Value::MakeList(std::move(parts)));
  } else {
    d.items.emplace_back("content", m.content_is_null ? Value::None() : Value::Str(m.content));
  }
  if (m.name) d.items.emplace_back("name", Value::Str(*m.name));
  if (m.tool_call_id) d.items.emplace_back("tool_call_id", Value::Str(*m.tool_call_id));
  if (m.tool_calls) {
    GANNET_ASSIGN_OR_RETURN(Value calls, FromJson(*m.tool_calls, 1));
    d.items.emplace_back("tool_calls", std::move(calls));
  }
  if (!m.extra.is_object())
    return Status::InvalidArgument("message extra fields must be a JSON object");
  for (auto it = m.extra.begin(); it != m.extra.end(); ++it) {
    if (d.Find(it.key())) continue;
    GANNET_ASSIGN_OR_RETURN(Value v, FromJson(it.value(), 1));
    d.items.emplace_back(it.key(), std::move(v));
  }
  return Value::MakeDict(std::move(d));
}

void SetGlobal(jinja::Dict* d, const std::string& key, jinja::Value v) {
  for (auto& [k, old] : d->items) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  d->items.emplace_back(key, std::move(v));
}

}  // namespace

Result<jinja::Value> JsonToValue(const nlohmann::ordered_json& j) { return FromJson(j, 0); }

Result<ChatMessage> ChatMessageFromJson(const nlohmann::ordered_json& j) {
  if (!j.is_object()) return Status::InvalidArgument("a message must be a JSON object");
  ChatMessage m;
  const auto role = j.find("role");
  if (role == j.end() || !role->is_string())
    return Status::InvalidArgument("a message needs a string 'role'");
  m.role = role->get<std::string>();
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::ordered_json& v = it.value();
    if (key == "role") continue;
    if (key == "content") {
      if (v.is_null()) {
        m.content_is_null = true;
      } else if (v.is_string()) {
        m.content = v.get<std::string>();
      } else if (v.is_array()) {
        for (const auto& p : v) {
          if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
            return Status::InvalidArgument("each content part needs a string 'type'");
          }
          ChatContentPart part{.type = p["type"].get<std::string>()};
          if (part.type == "text") {
            if (!p.contains("text") || !p["text"].is_string()) {
              return Status::InvalidArgument("a text content part needs a string 'text'");
            }
            part.text = p["text"].get<std::string>();
          }
          m.parts.push_back(std::move(part));
        }
        if (m.parts.empty()) m.content.clear();
      } else {
        return Status::InvalidArgument(
            "message content must be a string, null or an array of parts");
      }
    } else if ((key == "name" || key == "tool_call_id") && v.is_string()) {
      (key == "name" ? m.name : m.tool_call_id) = v.get<std::string>();
    } else if (key == "tool_calls") {
      m.tool_calls = v;
    } else {
      m.extra[key] = v;
    }
  }
  return m;
}

const char* ChatTemplate::FallbackSource() { return kFallback; }

Result<ChatTemplate> ChatTemplate::Parse(std::string_view source, std::string name) {
  GANNET_ASSIGN_OR_RETURN(std::unique_ptr<jinja::Template> t,
                          jinja::ParseTemplate(source, name, jinja::ParseOptions{}));
  ChatTemplate ct;
  ct.source_ = std::string(source);
  ct.tmpl_ = std::move(t);
  return ct;
}

Result<ChatTemplate> ChatTemplate::FromGguf(const GgufFile& file) {
  if (file.Find("tokenizer.chat_template") == nullptr) {
    GANNET_ASSIGN_OR_RETURN(ChatTemplate ct, Parse(kFallback, "fallback chat template (ChatML)"));
    ct.is_fallback_ = true;
    return ct;
  }
  GANNET_ASSIGN_OR_RETURN(const std::string source, file.GetString("tokenizer.chat_template"));
  Result<ChatTemplate> ct = Parse(source, "tokenizer.chat_template");
  if (!ct.ok()) return ct.status().WithContext(file.path());
  return ct;
}

Result<std::string> ChatTemplate::Render(const ChatRenderInput& in) const {
  using jinja::Value;
  jinja::Dict globals;
  if (!in.extra_variables.is_object())
    return Status::InvalidArgument("extra_variables must be a JSON object");
  for (auto it = in.extra_variables.begin(); it != in.extra_variables.end(); ++it) {
    GANNET_ASSIGN_OR_RETURN(Value v, JsonToValue(it.value()));
    SetGlobal(&globals, it.key(), std::move(v));
  }
  jinja::List messages;
  for (const ChatMessage& m : in.messages) {
    GANNET_ASSIGN_OR_RETURN(Value v, MessageValue(m));
    messages.push_back(std::move(v));
  }
  SetGlobal(&globals, "messages", Value::MakeList(std::move(messages)));
  SetGlobal(&globals, "add_generation_prompt", Value::Bool(in.add_generation_prompt));
  SetGlobal(&globals, "bos_token", Value::Str(in.bos_token));
  SetGlobal(&globals, "eos_token", Value::Str(in.eos_token));
  if (in.tools) {
    GANNET_ASSIGN_OR_RETURN(Value tools, JsonToValue(*in.tools));
    SetGlobal(&globals, "tools", std::move(tools));
  }
  SetGlobal(
      &globals, "raise_exception",
      Value::MakeCallable("raise_exception", [](jinja::CallArgs& a) -> Result<Value> {
        const jinja::Value* msg = a.Get(0, "message");
        return Status::InvalidArgument("the chat template rejected the conversation: " +
                                       (msg ? jinja::ToStr(*msg) : std::string("(no message)")));
      }));
  const std::time_t now = in.now;
  SetGlobal(&globals, "strftime_now",
            Value::MakeCallable("strftime_now", [now](jinja::CallArgs& a) -> Result<Value> {
              const jinja::Value* fmt = a.Get(0, "format");
              if (fmt == nullptr || !fmt->is_string())
                return Status::InvalidArgument("strftime_now expects a format string");
              if (fmt->str().size() > 256)
                return Status::OutOfRange("strftime_now: format longer than 256 bytes");
              std::tm tm{};
              gmtime_r(&now, &tm);
              char buf[1024];
              const size_t n = std::strftime(buf, sizeof(buf), fmt->str().c_str(), &tm);
              if (n == 0 && !fmt->str().empty())
                return Status::InvalidArgument("strftime_now: cannot format '" + fmt->str() + "'");
              return Value::Str(std::string(buf, n));
            }));
  return jinja::Render(*tmpl_, globals, in.limits);
}

Result<ChatTemplate> LoadChatTemplate(const std::string& path, const GgufFile& file) {
  if (path.empty()) return ChatTemplate::FromGguf(file);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::IoError("cannot open chat template file " + path);
  std::string source;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) source.append(buf, n);
  std::fclose(f);
  return ChatTemplate::Parse(source, path);
}

}  // namespace gannet
