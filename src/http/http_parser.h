// Incremental HTTP/1.1 request parser (RFC 9112 message syntax).
//
// Bytes arrive in arbitrary pieces (one at a time in the worst case); Feed() consumes what belongs
// to the current request and stops at its end, so pipelined requests stay in the caller's buffer.
// Every malformed or oversized input ends in an error state that carries the HTTP status to answer
// with (400, 413, 414, 417, 431, 501, 505) and a message; nothing a client sends aborts the
// process. Thread-safety: none; one parser per connection, used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gannet::http {

// Header fields in arrival order; names compare case-insensitively (RFC 9110 §5.1).
class HttpHeaders {
 public:
  void Add(std::string name, std::string value) {
    fields_.emplace_back(std::move(name), std::move(value));
  }
  // The first field with this name, or nullptr.
  const std::string* Get(std::string_view name) const;
  // Every value of the field, split on commas and trimmed (list-valued fields, RFC 9110 §5.6.1).
  std::vector<std::string> GetList(std::string_view name) const;
  // Whether the comma-separated list field `name` contains `token` (case-insensitive).
  bool HasToken(std::string_view name, std::string_view token) const;
  size_t Count(std::string_view name) const;
  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method;     // "GET", "POST", ...
  std::string target;     // as sent: "/v1/models?x=1"
  std::string path;       // "/v1/models"
  std::string query;      // "x=1" (without '?'), empty when absent
  int version_minor = 1;  // HTTP/1.<minor>; 0 or 1 (1.2+ is read as 1.1)
  HttpHeaders headers;
  std::string body;  // de-chunked
  // Whether the connection may carry another request after this one (HTTP/1.1 unless
  // "Connection: close"; HTTP/1.0 only with "Connection: keep-alive").
  bool keep_alive = true;
  // "Expect: 100-continue" on an HTTP/1.1 request.
  bool expect_continue = false;
};

struct HttpParserLimits {
  size_t max_request_line = 8 * 1024;   // longer: 414
  size_t max_header_bytes = 32 * 1024;  // request line + header fields (+ chunked trailers): 431
  size_t max_headers = 100;             // more fields: 431
  size_t max_body_bytes = 8 << 20;      // declared or de-chunked body larger: 413
};

class HttpParser {
 public:
  enum class State { kNeedMore, kComplete, kError };

  explicit HttpParser(HttpParserLimits limits = {}) : limits_(limits) {}

  // Consumes bytes of the current request from `data` and returns how many it took. It takes
  // nothing once the request is complete or the parser has failed.
  size_t Feed(std::string_view data);

  State state() const;
  // True once the header section has been read and accepted (the body may still be pending):
  // the moment to answer "Expect: 100-continue".
  bool headers_complete() const { return headers_complete_; }
  // True while a body is expected and not all of it has arrived.
  bool body_pending() const;
  // True when part of a request has been consumed (stray empty lines between requests do not
  // count): a connection that goes quiet now is a timed-out request, not an idle one.
  bool in_progress() const;
  // The request read so far (headers are final once headers_complete()).
  const HttpRequest& request() const { return req_; }

  // REQUIRES: state() == kComplete. Hands the request over and resets for the next one.
  HttpRequest TakeRequest();

  // REQUIRES: state() == kError.
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }

  void Reset();

 private:
  enum class Phase {
    kRequestLine,
    kHeaders,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kDone,
    kFailed,
  };

  // Accumulates one line (without its CRLF/LF) into line_; returns bytes consumed and sets
  // *have_line once the line is whole. `limit` bounds the line length; past it, *too_long is set.
  size_t TakeLine(std::string_view data, size_t limit, bool* have_line, bool* too_long);
  void ParseRequestLine(std::string_view line);
  void ParseHeaderLine(std::string_view line);
  void FinishHeaders();
  void ParseChunkSize(std::string_view line);
  void Fail(int status, std::string message);
  size_t HeaderBudgetLeft() const;

  HttpParserLimits limits_;
  Phase phase_ = Phase::kRequestLine;
  HttpRequest req_;
  std::string line_;
  bool headers_complete_ = false;
  size_t header_bytes_ = 0;      // request line + header lines + trailers consumed so far
  uint64_t body_remaining_ = 0;  // Content-Length bytes or bytes of the current chunk left
  int leading_empty_lines_ = 0;
  int error_status_ = 0;
  std::string error_message_;
};

// The standard reason phrase of a status code ("Not Found"), "Unknown" for codes it does not know.
const char* HttpReasonPhrase(int status);

}  // namespace gannet::http
