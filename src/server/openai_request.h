// OpenAI request bodies -> validated plain structs, and OpenAI's error JSON.
//
// POST /v1/chat/completions and POST /v1/completions bodies are parsed here, before anything
// touches the engine: every field's type and range is checked and a failure names the field in
// OpenAI's error shape ({"error": {"message", "type", "param", "code"}}), so a client sees the same
// 400 it would see from OpenAI. Unknown fields are ignored, as OpenAI does; fields OpenAI knows but
// gannet does not implement (functions, echo, suffix, best_of, ...) are
// refused with a 400 naming them rather than silently ignored. The tool fields are read by
// server/openai_tools.h. Sampling defaults are OpenAI's
// (temperature 1, top_p 1, no top_k / min_p / penalties), not llama.cpp's.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/template.h"
#include "chat/tool_calls.h"
#include "grammar/grammar.h"
#include "sampling/sampling_params.h"
#include "server/bounded_json.h"

namespace gannet::server {

// An error answer in OpenAI's shape. Empty `param` / `code` are written as null.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string code;
};

// {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
std::string ApiErrorJson(const ApiError& error);

enum class Endpoint { kChat, kCompletion };

// Limits a request is checked against.
struct RequestLimits {
  int32_t n_vocab = 0;     // token ids (prompt ids, logit_bias keys) must be below it
  int32_t max_n = 16;      // choices per request
  int32_t max_stops = 16;  // stop strings (OpenAI allows 4; more are harmless)
  int32_t max_top_logprobs = 20;
  int32_t max_messages = 2048;      // chat messages (OpenAI's own limit)
  int32_t max_message_fields = 64;  // keys of one message (role, content, tool_calls, extras)
  JsonLimits json;                  // the body's shape, enforced while it is parsed
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;  // as sent (may be empty)
  // kChat: the conversation.
  std::vector<ChatMessage> messages;
  // kCompletion: the prompt as text, or as token ids when `prompt_is_tokens`.
  std::string prompt_text;
  std::vector<int32_t> prompt_tokens;
  bool prompt_is_tokens = false;
  std::optional<int32_t> max_tokens;  // unset: up to the context
  SamplingParams sampling;
  std::vector<std::string> stop;  // non-empty strings
  int32_t n = 1;
  // Log-probabilities: chat `logprobs: true` (+ top_logprobs), completions `logprobs: k`.
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string user;
  bool ignore_eos = false;  // extension (vLLM, llama.cpp): the model's end-of-generation tokens do
                            // not end a choice
  // Extension (llama.cpp's server): `grammar`, GBNF text every choice must follow; compiled here,
  // so a bad grammar is a 400 naming the line and column. Also set by `response_format`
  // json_object / json_schema (grammar/json_schema.h; an unsupported schema keyword is a 400
  // naming it). Null: none.
  std::shared_ptr<const grammar::Grammar> grammar;
  // Chat: `tools` with `tool_choice` and `parallel_tool_calls` (server/openai_tools.h). Unset: no
  // tools. The grammar of the calls depends on the model's format and is set by the service
  // (with tool_choice auto in a native format a lazy one: grammar_triggers).
  std::optional<ToolSpec> tools;
  grammar::GrammarTriggers grammar_triggers;
};

// Parses and validates a request body for `endpoint`. On failure returns the 400 to send (or 415
// / 413 never: the HTTP layer handles those).
std::optional<ApiError> ParseCompletionRequest(std::string_view body, Endpoint endpoint,
                                               const RequestLimits& limits, CompletionRequest* out);

// The 400 for a request that does not fit the context: prompt + completion > context_length.
// `max_tokens_given` says whether the completion length came from the request.
ApiError ContextLengthError(Endpoint endpoint, int64_t context_length, int64_t prompt_tokens,
                            int64_t max_tokens, bool max_tokens_given);

}  // namespace gannet::server
