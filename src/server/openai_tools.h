// The tool-calling fields of a chat request: `tools`, `tool_choice`, `parallel_tool_calls`, and
// the shape of tool calls in the history. Every problem is a 400 naming the field:
//   - tools: an array of at most kMaxTools {"type": "function", "function": {"name",
//     "description", "parameters", "strict"}}; names are 1-64 of [a-zA-Z0-9_-] and unique;
//     `parameters` must be a JSON Schema the converter (grammar/json_schema.h) enforces, else the
//     converter's message naming the keyword, under `tools[i].function.parameters`;
//   - tool_choice: "none" | "auto" | "required" | {"type": "function", "function": {"name"}}
//     naming one of the tools; without tools it is refused (as OpenAI does);
//   - parallel_tool_calls: a boolean;
//   - the legacy `functions` / `function_call` are refused (send `tools` / `tool_choice`);
//   - assistant messages' tool_calls: an array of {"id", "type": "function", "function": {"name":
//     string, "arguments": JSON text (or an already structured value)}}.
// An empty `tools` array is no tools.
//
// Pure functions; thread-safe.
#pragma once

#include <optional>

#include "chat/tool_calls.h"
#include "server/openai_request.h"

namespace gannet::server {

inline constexpr size_t kMaxTools = 128;

// Reads the fields above from the request body `j` into out->tools (unset when no tools are
// given). Also checks the messages' tool calls.
std::optional<ApiError> ReadToolFields(const nlohmann::ordered_json& j, CompletionRequest* out);

}  // namespace gannet::server
