// ResponseWriter: how a handler answers one HTTP request, from any thread, at any time.
//
// A handler either sends one full response (Send) or streams: StartStream, Write as often as it
// likes, End. Bytes are never written to the socket here: they are queued for the connection and
// the server's event loop flushes them, so a slow client never blocks the writer's thread.
//
// Backpressure: Write returns kBackpressure once the bytes queued for this response and not yet
// taken by the client pass HttpServerOptions::write_soft_limit (the bytes are still queued); a
// writer that keeps writing past write_hard_limit gets kClosed and the connection is dropped.
// The same holds server-wide: past half of HttpServerOptions::memory_budget (bytes queued for all
// responses plus buffered request bodies) writes see kBackpressure, and a write or Send that would
// pass the budget drops its connection (kClosed / ResourceExhausted).
// WaitWritable blocks until the queue drains below the soft limit.
//
// Disconnects: when the client goes away (FIN, RST, write error, server shutdown deadline) the
// writer becomes closed, further writes are refused, and the on-close callback runs once, on the
// server's event-loop thread (keep it short: set a flag, notify a condition variable).
//
// Thread-safety: every method may be called from any thread concurrently. The writer is handed to
// handlers as std::shared_ptr; when the last reference goes away without a complete response, the
// server answers 500 (nothing sent yet) or aborts the connection (a stream was started), so a
// client never waits forever on a forgotten request.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace gannet::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 200;
  // Content-Length, Transfer-Encoding, Connection and Date are the server's to set; a handler
  // that passes them gets InvalidArgument.
  HeaderList headers;
  std::string body;
};

enum class WriteResult {
  kOk,            // queued
  kBackpressure,  // queued, but the client is behind: slow down (WaitWritable)
  kClosed,        // not queued: the connection is gone or was dropped for exceeding the hard limit
};

namespace internal {
struct Exchange;
}

class ResponseWriter {
 public:
  explicit ResponseWriter(std::shared_ptr<internal::Exchange> exchange);
  ~ResponseWriter();
  ResponseWriter(const ResponseWriter&) = delete;
  ResponseWriter& operator=(const ResponseWriter&) = delete;

  // A complete response with Content-Length framing.
  // Errors: InvalidArgument (a response was already started, or a header is malformed or reserved),
  // IoError (the connection is closed).
  Status Send(HttpResponse response);
  Status Send(int status, std::string content_type, std::string body);

  // Starts a streamed response: chunked transfer coding for HTTP/1.1 clients, or (HTTP/1.0)
  // no framing and the connection closes at End. Errors as for Send.
  Status StartStream(int status, HeaderList headers);
  // REQUIRES: StartStream succeeded. An empty `data` is a no-op (a zero chunk would end the
  // stream).
  WriteResult Write(std::string_view data);
  // Ends the stream. Errors: InvalidArgument (no stream started, or already ended), IoError
  // (closed).
  Status End();

  // True once the client has gone (or the server dropped the connection): stop generating.
  bool IsClosed() const;
  // Runs `on_close` once when the connection closes before the response was fully delivered; at
  // once, on this thread, if that already happened. Replaces an earlier callback.
  void SetOnClose(std::function<void()> on_close);
  // A header sent with whatever response this writer starts (Send or StartStream), before the
  // handler's own: how a front end adds headers every answer must carry (CORS) without touching
  // each response. Errors: InvalidArgument (malformed or reserved, or a response already started).
  Status AddHeader(std::string name, std::string value);
  // Words appended to this request's access-log record (e.g. "tokens=12+30"). Set it before the
  // response completes; the record is written when it does.
  void SetLogNote(std::string note);
  // Blocks until the queued bytes are below the soft limit (true) or the connection closed or the
  // timeout passed (false).
  bool WaitWritable(std::chrono::milliseconds timeout);
  // Bytes queued for this response that the client has not taken yet.
  size_t queued_bytes() const;

 private:
  std::shared_ptr<internal::Exchange> ex_;
};

}  // namespace gannet::http
