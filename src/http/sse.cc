#include "http/sse.h"

namespace gannet::http {
namespace {

void AppendField(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->append(": ");
  for (char c : value) {
    if (c != '\n' && c != '\r') out->push_back(c);
  }
  out->push_back('\n');
}

}  // namespace

std::string SseEvent(std::string_view data, std::string_view event, std::string_view id) {
  std::string out;
  out.reserve(data.size() + 16);
  if (!event.empty()) AppendField(&out, "event", event);
  if (!id.empty()) AppendField(&out, "id", id);
  size_t start = 0;
  while (true) {
    size_t end = data.find_first_of("\r\n", start);
    out.append("data: ");
    out.append(
        data.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    out.push_back('\n');
    if (end == std::string_view::npos) break;
    // \r\n is one line break, not two.
    start = end + ((data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n') ? 2 : 1);
  }
  out.push_back('\n');
  return out;
}

std::string SseDone() { return "data: [DONE]\n\n"; }

std::string SseComment(std::string_view text) {
  std::string out;
  AppendField(&out, "", text);
  out.push_back('\n');
  return out;
}

std::vector<std::pair<std::string, std::string>> SseHeaders() {
  return {{"Content-Type", "text/event-stream; charset=utf-8"},
          {"Cache-Control", "no-cache"},
          {"X-Accel-Buffering", "no"}};
}

}  // namespace gannet::http
