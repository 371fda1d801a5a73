// Server-sent events framing (WHATWG HTML §9.2 "Server-sent events"), as OpenAI's streaming API
// uses it: each event is "data: <payload>\n\n" and the stream ends with "data: [DONE]\n\n".
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gannet::http {

// One event. A payload with line breaks (\n, \r\n or \r) becomes one "data:" line per line, which
// a client joins back with "\n". `event` and `id`, when not empty, add "event:" / "id:" fields;
// line breaks in them are dropped (they would end the field early).
std::string SseEvent(std::string_view data, std::string_view event = {}, std::string_view id = {});

// The OpenAI end-of-stream marker: "data: [DONE]\n\n".
std::string SseDone();

// A comment line (": text\n\n"): clients ignore it; it keeps idle proxies from closing the stream.
std::string SseComment(std::string_view text);

// Response headers for an event stream (Content-Type: text/event-stream, no caching, no proxy
// buffering). The server adds the framing headers.
std::vector<std::pair<std::string, std::string>> SseHeaders();

}  // namespace gannet::http
