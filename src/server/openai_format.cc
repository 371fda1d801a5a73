#include "server/openai_format.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

namespace gannet::server {
namespace {

using Json = nlohmann::ordered_json;

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// OpenAI reports an impossible token's log-probability as -9999.0; JSON has no -infinity.
double FiniteLogprob(float lp) { return std::isfinite(lp) ? static_cast<double>(lp) : -9999.0; }

Json Bytes(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

Json ChatLogprobs(const std::vector<LogprobEntry>& entries) {
  Json content = Json::array();
  for (const LogprobEntry& e : entries) {
    Json top = Json::array();
    for (const auto& alt : e.top) {
      top.push_back(Json{{"token", alt.token},
                         {"logprob", FiniteLogprob(alt.logprob)},
                         {"bytes", Bytes(alt.token)}});
    }
    content.push_back(Json{{"token", e.token},
                           {"logprob", FiniteLogprob(e.logprob)},
                           {"bytes", Bytes(e.token)},
                           {"top_logprobs", std::move(top)}});
  }
  return Json{{"content", std::move(content)}, {"refusal", nullptr}};
}

Json TextLogprobs(const std::vector<LogprobEntry>& entries) {
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(),
       offsets = Json::array();
  for (const LogprobEntry& e : entries) {
    tokens.push_back(e.token);
    token_logprobs.push_back(FiniteLogprob(e.logprob));
    Json alts = Json::object();
    for (const auto& alt : e.top) alts[alt.token] = FiniteLogprob(alt.logprob);
    top.push_back(std::move(alts));
    offsets.push_back(e.text_offset);
  }
  return Json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

Json LogprobsJson(Endpoint endpoint, bool has, const std::vector<LogprobEntry>& entries) {
  if (!has) return nullptr;
  return endpoint == Endpoint::kChat ? ChatLogprobs(entries) : TextLogprobs(entries);
}

Json UsageJson(const Usage& u) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"prompt_tokens_details", Json{{"cached_tokens", u.cached_tokens}}}};
}

Json Header(const ResponseMeta& meta, const char* object) {
  return Json{
      {"id", meta.id}, {"object", object}, {"created", meta.created}, {"model", meta.model}};
}

const char* ChunkObject(Endpoint e) {
  return e == Endpoint::kChat ? "chat.completion.chunk" : "text_completion";
}

}  // namespace

std::string CompletionResponseJson(const ResponseMeta& meta,
                                   const std::vector<ChoiceResult>& choices, const Usage& usage) {
  const bool chat = meta.endpoint == Endpoint::kChat;
  Json j = Header(meta, chat ? "chat.completion" : "text_completion");
  Json arr = Json::array();
  for (const ChoiceResult& c : choices) {
    Json choice = Json{{"index", c.index}};
    if (chat) {
      Json message = Json{{"role", "assistant"},
                          {"content", c.content_null ? Json(nullptr) : Json(c.text)},
                          {"refusal", nullptr}};
      if (!c.tool_calls.empty()) {
        Json calls = Json::array();
        for (const ToolCallResult& t : c.tool_calls) {
          calls.push_back(Json{{"id", t.id},
                               {"type", "function"},
                               {"function", Json{{"name", t.name}, {"arguments", t.arguments}}}});
        }
        message["tool_calls"] = std::move(calls);
      }
      choice["message"] = std::move(message);
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = LogprobsJson(meta.endpoint, c.has_logprobs, c.logprobs);
    choice["finish_reason"] = c.finish_reason;
    arr.push_back(std::move(choice));
  }
  j["choices"] = std::move(arr);
  j["usage"] = UsageJson(usage);
  j["system_fingerprint"] = meta.system_fingerprint;
  return Dump(j);
}

std::string ChunkJson(const ResponseMeta& meta, const ChunkDelta& d) {
  const bool chat = meta.endpoint == Endpoint::kChat;
  Json j = Header(meta, ChunkObject(meta.endpoint));
  j["system_fingerprint"] = meta.system_fingerprint;
  Json choice = Json{{"index", d.index}};
  if (chat) {
    Json delta = Json::object();
    if (d.role) delta["role"] = "assistant";
    if (d.text) delta["content"] = *d.text;
    if (!d.tool_calls.empty()) {
      Json calls = Json::array();
      for (const ToolCallChunk& t : d.tool_calls) {
        Json call = Json{{"index", t.index}};
        Json fn = Json{{"arguments", t.arguments}};
        if (!t.id.empty()) {
          call["id"] = t.id;
          call["type"] = "function";
          fn = Json{{"name", t.name}, {"arguments", t.arguments}};
        }
        call["function"] = std::move(fn);
        calls.push_back(std::move(call));
      }
      delta["tool_calls"] = std::move(calls);
    }
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = d.text.value_or("");
  }
  choice["logprobs"] = LogprobsJson(meta.endpoint, d.has_logprobs, d.logprobs);
  choice["finish_reason"] = d.finish_reason ? Json(*d.finish_reason) : Json(nullptr);
  j["choices"] = Json::array({std::move(choice)});
  return Dump(j);
}

std::string UsageChunkJson(const ResponseMeta& meta, const Usage& usage) {
  Json j = Header(meta, ChunkObject(meta.endpoint));
  j["system_fingerprint"] = meta.system_fingerprint;
  j["choices"] = Json::array();
  j["usage"] = UsageJson(usage);
  return Dump(j);
}

std::string ModelListJson(const std::string& model_id, int64_t created) {
  Json model =
      Json{{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "gannet"}};
  return Dump(Json{{"object", "list"}, {"data", Json::array({std::move(model)})}});
}

std::string NewResponseId(Endpoint endpoint) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id.push_back(kAlphabet[rng() % (sizeof(kAlphabet) - 1)]);
  return id;
}

}  // namespace gannet::server
