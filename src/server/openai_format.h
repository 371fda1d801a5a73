// OpenAI response objects as JSON text: chat.completion, chat.completion.chunk, text_completion
// (whole and streamed), usage, log-probabilities and /v1/models. Field names, nesting and nulls
// follow OpenAI's API reference so the official clients parse them unchanged.
//
// Pure functions; thread-safe. Text may hold any bytes: invalid UTF-8 (a token that is half a
// character, in logprobs) is written as U+FFFD rather than failing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/openai_request.h"

namespace gannet::server {

// One generated token's log-probabilities.
struct LogprobEntry {
  std::string token;     // the token's bytes (may be part of a UTF-8 character)
  float logprob = 0.0f;  // -infinity is written as -9999.0, as OpenAI does
  struct Alternative {
    std::string token;
    float logprob = 0.0f;
  };
  std::vector<Alternative> top;
  int64_t text_offset = 0;  // completions: offset of the token's text in the choice's text
};

struct ResponseMeta {
  Endpoint endpoint = Endpoint::kChat;
  std::string id;       // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  std::string system_fingerprint;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};

// A tool call of a whole response: {"id", "type": "function", "function": {"name", "arguments"}}.
struct ToolCallResult {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text
};

// A piece of a streamed tool call: the first piece of a call carries its id and name.
struct ToolCallChunk {
  int32_t index = 0;
  std::string id;    // first piece only
  std::string name;  // first piece only
  std::string arguments;
};

// One choice of a whole (non-streamed) response.
struct ChoiceResult {
  int32_t index = 0;
  std::string text;
  bool content_null = false;  // chat: "content": null (a message of tool calls only)
  std::vector<ToolCallResult> tool_calls;
  std::string finish_reason;  // "stop", "length", "tool_calls"
  bool has_logprobs = false;  // false: "logprobs": null
  std::vector<LogprobEntry> logprobs;
};

// One streamed chunk of one choice.
struct ChunkDelta {
  int32_t index = 0;
  bool role = false;                      // chat: the first chunk carries delta.role
  std::optional<std::string> text;        // delta.content / text
  std::vector<ToolCallChunk> tool_calls;  // chat: delta.tool_calls
  bool has_logprobs = false;
  std::vector<LogprobEntry> logprobs;
  std::optional<std::string> finish_reason;  // the last chunk of the choice
};

std::string CompletionResponseJson(const ResponseMeta& meta,
                                   const std::vector<ChoiceResult>& choices, const Usage& usage);
std::string ChunkJson(const ResponseMeta& meta, const ChunkDelta& delta);
// The usage chunk of stream_options.include_usage: "choices": [] and the usage.
std::string UsageChunkJson(const ResponseMeta& meta, const Usage& usage);
// GET /v1/models.
std::string ModelListJson(const std::string& model_id, int64_t created);

// "chatcmpl-" / "cmpl-" + 24 random alphanumerics.
std::string NewResponseId(Endpoint endpoint);

}  // namespace gannet::server
