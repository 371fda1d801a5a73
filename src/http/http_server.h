// HttpServer: HTTP/1.1 over non-blocking sockets with one epoll event-loop thread.
//
// The loop accepts, reads, parses (HttpParser) and writes; complete requests go to the handler on
// a small worker pool, so a handler may block (waiting for generation) or return at once and
// answer later from any thread through its ResponseWriter. Responses on one connection go out in
// request order (pipelining): the next request is handed over only after the previous response
// reached the socket. Writers never touch sockets; they queue bytes and wake the loop (eventfd).
//
// What the loop enforces: the parser's size limits (400/413/414/431/501/505 answered with
// "Connection: close"), a cap on open connections (503 past it), keep-alive idle timeout, a
// whole-header deadline and a minimum body rate (408), a timeout for a client that takes no bytes,
// per-connection request count and lifetime limits, per-response queue limits and a server-wide
// memory budget for buffered bodies and queued responses (see ResponseWriter), prompt disconnect
// detection (EPOLLRDHUP, EOF, errors) that fires the writer's on-close callback, and a Shutdown
// that returns in bounded time even when a handler never does.
//
// Thread-safety: Start and Shutdown from one controlling thread; port() and the counters from any.
// The handler runs on worker threads, possibly several at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "http/http_parser.h"
#include "http/response_writer.h"

namespace gannet::http {

namespace internal {
class MemoryBudget;
}

// One line of the access log: written once per request, when its response completed or its
// connection closed.
struct RequestLog {
  std::string method;  // "-" when the request line could not be parsed
  std::string path;    // "-" likewise
  int status = 0;      // 0 when no response was started before the connection closed
  uint64_t bytes = 0;  // response bytes the client's socket accepted (headers included)
  std::chrono::microseconds latency{0};  // from the request's last byte to the response's last
  bool completed = true;  // false: the connection closed before the response was delivered
  std::string note;       // what the handler added (ResponseWriter::SetLogNote), e.g. token counts
};

// "POST /v1/chat/completions 200 1834B 12.3ms" (+ " aborted" when not completed, + the note).
std::string FormatRequestLog(const RequestLog& log);

using HttpHandler =
    std::function<void(HttpRequest request, std::shared_ptr<ResponseWriter> writer)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // numeric address or name; "0.0.0.0" / "::" for all
  uint16_t port = 8080;            // 0 picks a free port (see HttpServer::port())
  int listen_backlog = 4096;       // the kernel caps it at net.core.somaxconn
  // Open connections. Lowered at Start to what RLIMIT_NOFILE allows (with headroom for files
  // and the server's own descriptors); past it a new connection gets 503 and is closed.
  int max_connections = 10000;
  // Raise the process's RLIMIT_NOFILE soft limit to its hard limit at Start.
  bool raise_fd_limit = true;
  HttpParserLimits limits;
  // A keep-alive connection with no request in flight is closed after this long quiet; a request
  // whose bytes stop arriving for this long is answered 408.
  std::chrono::milliseconds idle_timeout{60000};
  // A request's header section must be complete this long after its first byte, however steadily
  // the bytes trickle in; past it: 408.
  std::chrono::milliseconds header_timeout{30000};
  // Once the headers are in, the body must arrive at an average of at least this many bytes per
  // second, counted from body_rate_grace after the headers; slower: 408. 0 turns the check off.
  size_t min_body_rate = 1024;
  std::chrono::milliseconds body_rate_grace{10000};
  // Requests served on one connection; the last one is answered with "Connection: close".
  int max_requests_per_connection = 1000;
  // Age past which a connection takes no new request: the next response says
  // "Connection: close" and an idle one is closed. Responses in flight are not cut.
  std::chrono::milliseconds max_connection_lifetime{3600000};
  // A response whose bytes the client stops taking for this long is dropped.
  std::chrono::milliseconds send_timeout{60000};
  // Per-response queued bytes: soft (writers see kBackpressure) and hard (connection dropped).
  size_t write_soft_limit = 1 << 20;
  size_t write_hard_limit = 16 << 20;
  // Server-wide bytes of buffered request bodies plus response bytes queued and not yet taken by
  // clients. A request body that would pass it is answered 503; a response write that would
  // pass it drops its connection; past half of it writers see kBackpressure.
  size_t memory_budget = size_t{1} << 30;
  int handler_threads = 4;
  // Requests for these paths (exact match, e.g. "/health", "/metrics") run on a worker of their
  // own, so they never wait behind slow handlers on the others.
  std::vector<std::string> priority_paths;
  // Shutdown waits this long after the grace period, per pool (the workers, then the priority
  // worker), for handlers to return (their writers are closed by then); handlers still running
  // are abandoned (their threads detached) so that
  // Shutdown returns even when a handler is stuck.
  std::chrono::milliseconds handler_exit_timeout{5000};
  // Called on the event-loop thread once per request; keep it cheap. Empty: no log.
  std::function<void(const RequestLog&)> request_logger;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  // Shuts down with no grace period if still running.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the loop and the workers. Errors: InvalidArgument (bad host or
  // options), IoError (address in use, permission, resources).
  Status Start();

  // The bound port (after Start; meaningful with options.port == 0).
  uint16_t port() const { return bound_port_; }

  // Graceful stop: closes the listening socket at once (new connections are refused), closes
  // idle keep-alive connections, lets in-flight responses finish (answered with
  // "Connection: close") for up to `grace`, then closes whatever is left (their writers' on-close
  // callbacks run) and joins the loop and the workers. Blocks until done; idempotent.
  // REQUIRES: handlers return once their writer is closed, or the join waits for them.
  void Shutdown(std::chrono::milliseconds grace);

  int open_connections() const { return open_connections_.load(std::memory_order_relaxed); }
  // Bytes charged to options.memory_budget now (0 before Start).
  size_t buffered_bytes() const;
  // Handler threads Shutdown gave up waiting for (see handler_exit_timeout).
  int abandoned_handlers() const { return abandoned_handlers_; }
  // The connection cap in force after Start (options.max_connections, fd-limit aware).
  int max_connections() const { return max_connections_; }

 private:
  class Loop;
  class WorkerPool;

  HttpServerOptions options_;
  HttpHandler handler_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<WorkerPool> priority_workers_;
  std::unique_ptr<Loop> loop_;
  std::thread loop_thread_;
  uint16_t bound_port_ = 0;
  int max_connections_ = 0;
  std::atomic<int> open_connections_{0};
  std::shared_ptr<internal::MemoryBudget> budget_;
  int abandoned_handlers_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace gannet::http
