#include "http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "http/exchange.h"
#include "http/worker_pool.h"

namespace gannet::http {

using Clock = std::chrono::steady_clock;
using internal::Exchange;
using internal::LoopWaker;
using internal::MemoryBudget;

namespace {

constexpr uint64_t kListenId = 0;
constexpr uint64_t kWakeId = 1;
// Descriptors kept free for model files, logs and the server's own epoll/eventfd/listen sockets.
constexpr int kFdHeadroom = 64;
// Pipelined bytes buffered while a response is in flight; past it the loop stops reading.
constexpr size_t kMaxBufferedInput = 256 * 1024;
constexpr size_t kReadChunk = 64 * 1024;
// After "Connection: close" the write side is shut and the client's remaining bytes are read and
// dropped for this long, so the kernel does not answer them with a RST that could destroy the
// response before the client read it (the classic lingering close).
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr std::chrono::milliseconds kTick{100};
constexpr std::chrono::milliseconds kAcceptPause{100};

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out.append(buf);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

// A complete response the loop itself sends (parse errors, timeouts, overload), always closing.
std::string ErrorResponse(int status, std::string_view message) {
  const std::string body =
      "{\"error\":{\"message\":\"" + JsonEscape(message) +
      "\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":" + std::to_string(status) +
      "}}";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + HttpReasonPhrase(status) + "\r\n";
  internal::AppendHttpDate(&out);
  out.append("Content-Type: application/json\r\nConnection: close\r\nContent-Length: ");
  out.append(std::to_string(body.size()));
  out.append("\r\n\r\n");
  out.append(body);
  return out;
}

}  // namespace

std::string FormatRequestLog(const RequestLog& log) {
  char latency[32];
  std::snprintf(latency, sizeof(latency), "%.1fms",
                static_cast<double>(log.latency.count()) / 1000.0);
  std::string out = log.method + " " + log.path + " " + std::to_string(log.status) + " " +
                    std::to_string(log.bytes) + "B " + latency;
  if (!log.completed) out += " aborted";
  if (!log.note.empty()) out += " " + log.note;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The event loop. Everything in it runs on the loop thread except RequestShutdown.

class HttpServer::Loop {
 public:
  Loop(const HttpServerOptions& options, int max_connections, std::atomic<int>* open_connections,
       WorkerPool* workers, WorkerPool* priority_workers, int listen_fd, int epoll_fd,
       std::shared_ptr<LoopWaker> waker, std::shared_ptr<MemoryBudget> budget)
      : options_(options),
        max_connections_(max_connections),
        open_connections_(open_connections),
        workers_(workers),
        priority_workers_(priority_workers),
        listen_fd_(listen_fd),
        epoll_fd_(epoll_fd),
        waker_(std::move(waker)),
        budget_(std::move(budget)) {}

  ~Loop() {
    for (auto& [id, conn] : conns_) close(conn->fd);
    if (listen_fd_ >= 0) close(listen_fd_);
    close(epoll_fd_);
    waker_->Stop();  // queued exchanges hold the waker: drop them, and take no more
  }

  Status Register() {
    if (!Ctl(EPOLL_CTL_ADD, listen_fd_, EPOLLIN, kListenId) ||
        !Ctl(EPOLL_CTL_ADD, waker_->event_fd(), EPOLLIN, kWakeId)) {
      return Status::IoError(std::string("epoll_ctl: ") + std::strerror(errno));
    }
    return Status::Ok();
  }

  void RequestShutdown(Clock::time_point deadline) {
    deadline_ns_.store(deadline.time_since_epoch().count(), std::memory_order_relaxed);
    waker_->draining.store(true);
    shutdown_requested_.store(true, std::memory_order_release);
    waker_->Wake();
  }

  void Run();

 private:
  struct Conn {
    int fd = -1;
    uint64_t id = 0;
    HttpParser parser;
    std::string in;
    size_t in_off = 0;
    std::string out;
    size_t out_off = 0;
    size_t out_prefix = 0;  // leading bytes of `out` that belong to no exchange (100, errors)
    std::shared_ptr<Exchange> ex;  // the request in flight
    bool ex_done = false;          // its last bytes are in `out`
    bool ex_close_after = false;
    uint64_t ex_bytes = 0;
    bool closing = false;  // no more requests: flush, then half-close and drain
    bool shut_wr = false;
    bool continue_sent = false;
    uint32_t events = 0;
    Clock::time_point last_read;
    Clock::time_point last_write;  // last progress while `out` had bytes
    Clock::time_point linger_deadline;
    Clock::time_point accepted;
    int requests = 0;                 // handed to the handler so far
    Clock::time_point request_start;  // first byte of the request being parsed
    Clock::time_point headers_done;   // its header section completed (when headers_seen)
    bool headers_seen = false;
    size_t body_charge = 0;     // memory budget charged for the body being parsed
    size_t ex_body_charge = 0;  // ... and for the body of the request in flight

    explicit Conn(const HttpParserLimits& limits) : parser(limits) {}
    bool OutEmpty() const { return out_off == out.size(); }
  };

  bool Ctl(int op, int fd, uint32_t events, uint64_t id) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    return epoll_ctl(epoll_fd_, op, fd, &ev) == 0;
  }
  void SetEvents(Conn& c, uint32_t events) {
    if (c.events == events) return;
    c.events = events;
    Ctl(EPOLL_CTL_MOD, c.fd, events, c.id);
  }
  Conn* Find(uint64_t id) {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : it->second.get();
  }

  void Accept();
  void OnConnEvent(Conn& c, uint32_t events);
  // Each of these may close `c`; they return false when it did (c is then dangling).
  bool OnReadable(Conn& c);
  bool ProcessInput(Conn& c);
  bool Flush(Conn& c);
  bool FinishExchange(Conn& c);
  void SendError(Conn& c, int status, const std::string& message);
  // After a Feed: starts the request's clocks and charges its body to the memory budget; false
  // when the budget is spent (503 queued).
  bool TrackRequest(Conn& c, bool was_in_progress);
  void HandOver(Conn& c);
  void ReleaseBodies(Conn& c);
  // The 408 a request in progress has earned by now, or nullptr.
  const char* RequestTimeout(const Conn& c, Clock::time_point now) const;
  void OnWake();
  void CloseConn(Conn& c);
  void Tick(Clock::time_point now);
  void BeginDrain();
  void Log(const Exchange& ex, int status, uint64_t bytes, bool completed);

  const HttpServerOptions& options_;
  const int max_connections_;
  std::atomic<int>* open_connections_;
  WorkerPool* workers_;
  WorkerPool* priority_workers_;  // options_.priority_paths
  int listen_fd_;
  const int epoll_fd_;
  std::shared_ptr<LoopWaker> waker_;
  std::shared_ptr<MemoryBudget> budget_;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  uint64_t next_id_ = 2;
  bool accept_paused_ = false;
  Clock::time_point accept_resume_;
  std::atomic<bool> shutdown_requested_{false};
  std::atomic<Clock::rep> deadline_ns_{0};
  bool draining_ = false;
  Clock::time_point next_tick_;
};

void HttpServer::Loop::Run() {
  std::vector<epoll_event> events(256);
  next_tick_ = Clock::now() + kTick;
  while (true) {
    if (draining_ && conns_.empty()) break;
    int timeout_ms = -1;
    if (!conns_.empty() || accept_paused_ || draining_) {
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(next_tick_ - Clock::now());
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count(), 0, kTick.count()));
    }
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) break;  // only EBADF/EINVAL: a bug, nothing left to serve
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kListenId) {
        Accept();
      } else if (id == kWakeId) {
        OnWake();
      } else if (Conn* c = Find(id)) {
        OnConnEvent(*c, events[i].events);
      }
    }
    if (!draining_ && shutdown_requested_.load(std::memory_order_acquire)) BeginDrain();
    const Clock::time_point now = Clock::now();
    if (now >= next_tick_) {
      Tick(now);
      next_tick_ = now + kTick;
    }
  }
}

void HttpServer::Loop::Accept() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: the listening socket would stay readable and spin the loop.
        // Stop watching it briefly; pending clients wait in the backlog instead of being refused.
        Ctl(EPOLL_CTL_DEL, listen_fd_, 0, kListenId);
        accept_paused_ = true;
        accept_resume_ = Clock::now() + kAcceptPause;
      }
      return;
    }
    if (static_cast<int>(conns_.size()) >= max_connections_) {
      // Best effort: a small response fits in the fresh socket's send buffer.
      const std::string resp = ErrorResponse(503, "too many open connections");
      [[maybe_unused]] ssize_t w = send(fd, resp.data(), resp.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    const int one = 1;
    // Server-sent events are small writes that must leave at once, not wait for Nagle.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto conn = std::make_unique<Conn>(options_.limits);
    conn->fd = fd;
    conn->id = next_id_++;
    conn->events = EPOLLIN | EPOLLRDHUP;
    conn->last_read = Clock::now();
    conn->accepted = conn->last_read;
    if (!Ctl(EPOLL_CTL_ADD, fd, conn->events, conn->id)) {
      close(fd);
      continue;
    }
    conns_.emplace(conn->id, std::move(conn));
    open_connections_->fetch_add(1, std::memory_order_relaxed);
  }
}

void HttpServer::Loop::OnConnEvent(Conn& c, uint32_t events) {
  if (events & (EPOLLERR | EPOLLHUP)) return CloseConn(c);
  // The client shut its side while a response is in flight: it is gone (clients do not
  // half-close while waiting for an answer), so stop the work now rather than at the next write.
  if ((events & EPOLLRDHUP) && c.ex) return CloseConn(c);
  if ((events & EPOLLOUT) && !Flush(c)) return;
  if (events & (EPOLLIN | EPOLLRDHUP)) OnReadable(c);
}

bool HttpServer::Loop::OnReadable(Conn& c) {
  char buf[kReadChunk];
  size_t total = 0;
  while (total < 4 * kReadChunk) {
    const bool discard = c.closing;
    if (!discard && c.ex && c.in.size() - c.in_off >= kMaxBufferedInput) {
      SetEvents(c,
                c.events & ~static_cast<uint32_t>(EPOLLIN));  // resumes when the response is done
      break;
    }
    const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n > 0) {
      total += static_cast<size_t>(n);
      c.last_read = Clock::now();
      if (!discard) c.in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      CloseConn(c);
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    CloseConn(c);
    return false;
  }
  if (c.ex || c.closing) return true;
  return ProcessInput(c);
}

bool HttpServer::Loop::ProcessInput(Conn& c) {
  while (!c.ex && !c.closing && c.in_off < c.in.size()) {
    const bool was_in_progress = c.parser.in_progress();
    c.in_off += c.parser.Feed(std::string_view(c.in).substr(c.in_off));
    const HttpParser::State state = c.parser.state();
    if (state == HttpParser::State::kError) {
      SendError(c, c.parser.error_status(), c.parser.error_message());
      break;
    }
    if (!TrackRequest(c, was_in_progress)) break;
    if (state == HttpParser::State::kNeedMore) {
      const HttpRequest& req = c.parser.request();
      if (c.parser.headers_complete() && req.expect_continue && c.parser.body_pending() &&
          !c.continue_sent) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        if (c.OutEmpty()) c.last_write = Clock::now();
        c.out.append(kContinue);
        c.out_prefix += kContinue.size();
        c.continue_sent = true;
      }
      break;
    }
    HandOver(c);
  }
  if (c.in_off == c.in.size()) {
    c.in.clear();
    c.in_off = 0;
  } else if (c.in_off > kReadChunk) {
    c.in.erase(0, c.in_off);
    c.in_off = 0;
  }
  return c.OutEmpty() ? true : Flush(c);
}

bool HttpServer::Loop::TrackRequest(Conn& c, bool was_in_progress) {
  const Clock::time_point now = Clock::now();
  if (!was_in_progress && c.parser.in_progress()) c.request_start = now;
  if (c.parser.headers_complete() && !c.headers_seen) {
    c.headers_seen = true;
    c.headers_done = now;
  }
  const size_t held = c.parser.request().body.size();
  if (held <= c.body_charge) return true;
  const size_t more = held - c.body_charge;
  if (!budget_->Fits(more)) {
    SendError(c, 503, "the server's memory budget for request bodies is spent; retry later");
    return false;
  }
  budget_->Charge(more);
  c.body_charge = held;
  return true;
}

// A complete request: hand it over; later pipelined bytes wait for its response.
void HttpServer::Loop::HandOver(Conn& c) {
  HttpRequest req = c.parser.TakeRequest();
  const Clock::time_point now = Clock::now();
  c.continue_sent = false;
  c.headers_seen = false;
  c.ex_body_charge = c.body_charge;
  c.body_charge = 0;
  ++c.requests;
  auto ex = std::make_shared<Exchange>();
  ex->conn_id = c.id;
  ex->waker = waker_;
  ex->budget = budget_;
  ex->head_request = req.method == "HEAD";
  ex->version_minor = req.version_minor;
  ex->soft_limit = options_.write_soft_limit;
  ex->hard_limit = options_.write_hard_limit;
  ex->method = req.method;
  ex->path = req.path;
  ex->start = now;
  // The connection's last request says "Connection: close": by count, by age, or draining.
  ex->keep_alive = req.keep_alive && !draining_ &&
                   c.requests < options_.max_requests_per_connection &&
                   now - c.accepted < options_.max_connection_lifetime;
  c.ex = ex;
  c.ex_done = false;
  c.ex_close_after = false;
  c.ex_bytes = 0;
  const auto& fast = options_.priority_paths;
  WorkerPool* pool =
      std::find(fast.begin(), fast.end(), req.path) != fast.end() ? priority_workers_ : workers_;
  pool->Submit(std::move(req), std::make_shared<ResponseWriter>(std::move(ex)));
}

void HttpServer::Loop::ReleaseBodies(Conn& c) {
  budget_->Release(c.body_charge + c.ex_body_charge);
  c.body_charge = 0;
  c.ex_body_charge = 0;
}

void HttpServer::Loop::SendError(Conn& c, int status, const std::string& message) {
  const std::string resp = ErrorResponse(status, message);
  if (c.OutEmpty()) c.last_write = Clock::now();
  c.out.append(resp);
  c.out_prefix += resp.size();
  c.closing = true;
  budget_->Release(c.body_charge);  // the request is abandoned; its body goes with it
  c.body_charge = 0;
  if (options_.request_logger) {
    const HttpRequest& req = c.parser.request();
    options_.request_logger(RequestLog{.method = req.method.empty() ? "-" : req.method,
                                       .path = req.path.empty() ? "-" : req.path,
                                       .status = status,
                                       .bytes = resp.size(),
                                       .completed = true});
  }
}

bool HttpServer::Loop::Flush(Conn& c) {
  while (!c.OutEmpty()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      const size_t sent = static_cast<size_t>(n);
      c.out_off += sent;
      c.last_write = Clock::now();
      const size_t own = std::min(sent, c.out_prefix);
      c.out_prefix -= own;
      if (sent > own && c.ex) {
        c.ex_bytes += sent - own;
        std::lock_guard<std::mutex> lock(c.ex->mu);
        c.ex->ReleaseLocked(sent - own);
        if (c.ex->unflushed <= c.ex->soft_limit) c.ex->writable_cv.notify_all();
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      SetEvents(c, c.events | EPOLLOUT);
      return true;
    }
    CloseConn(c);  // EPIPE, ECONNRESET: the client is gone
    return false;
  }
  c.out.clear();
  c.out_off = 0;
  SetEvents(c, c.events & ~static_cast<uint32_t>(EPOLLOUT));
  if (c.ex && c.ex_done) return FinishExchange(c);
  if (c.closing && !c.ex && !c.shut_wr) {
    int unread = 0;
    if (draining_ && ioctl(c.fd, FIONREAD, &unread) == 0 && unread == 0) {
      // Draining: the client sent nothing more, so a plain close loses nothing; do not hold the
      // shutdown for the linger time.
      CloseConn(c);
      return false;
    }
    shutdown(c.fd, SHUT_WR);
    c.shut_wr = true;
    c.linger_deadline = Clock::now() + kLingerTime;
  }
  return true;
}

bool HttpServer::Loop::FinishExchange(Conn& c) {
  std::shared_ptr<Exchange> ex = std::move(c.ex);
  std::function<void()> dropped_callback;
  int status = 0;
  bool truncated = false;
  {
    std::lock_guard<std::mutex> lock(ex->mu);
    ex->finished = true;
    dropped_callback.swap(ex->on_close);
    status = ex->status;
    truncated = ex->truncated;
  }
  Log(*ex, status, c.ex_bytes, /*completed=*/!truncated);
  budget_->Release(c.ex_body_charge);
  c.ex_body_charge = 0;
  if (c.ex_close_after || draining_) {
    c.closing = true;
    return Flush(c);  // nothing left to write: half-closes and lingers
  }
  SetEvents(c, c.events | EPOLLIN);
  c.last_read = Clock::now();
  return ProcessInput(c);
}

void HttpServer::Loop::OnWake() {
  for (std::shared_ptr<Exchange>& ex : waker_->Take()) {
    Conn* c = Find(ex->conn_id);
    bool abort = false;
    {
      std::lock_guard<std::mutex> lock(ex->mu);
      ex->queued = false;
      if (c == nullptr || c->ex != ex) continue;  // its connection closed meanwhile
      if (c->OutEmpty()) {
        c->last_write = Clock::now();
        c->out.clear();
        c->out_off = 0;
        c->out.swap(ex->pending);
      } else {
        c->out.append(ex->pending);
        ex->pending.clear();
      }
      c->ex_done = ex->phase == Exchange::Phase::kDone;
      c->ex_close_after = ex->close_after;
      abort = ex->abort;
    }
    if (abort) {
      CloseConn(*c);
    } else {
      Flush(*c);
    }
  }
}

void HttpServer::Loop::CloseConn(Conn& c) {
  Ctl(EPOLL_CTL_DEL, c.fd, 0, c.id);
  close(c.fd);
  open_connections_->fetch_sub(1, std::memory_order_relaxed);
  ReleaseBodies(c);
  std::function<void()> on_close;
  std::shared_ptr<Exchange> ex = std::move(c.ex);
  if (ex) {
    int status = 0;
    {
      std::lock_guard<std::mutex> lock(ex->mu);
      ex->closed = true;
      on_close.swap(ex->on_close);
      ex->pending.clear();
      ex->ReleaseLocked(ex->unflushed);
      status = ex->status;
    }
    ex->writable_cv.notify_all();
    Log(*ex, status, c.ex_bytes, /*completed=*/false);
  }
  conns_.erase(c.id);  // c is gone from here on
  if (on_close) on_close();
}

void HttpServer::Loop::Log(const Exchange& ex, int status, uint64_t bytes, bool completed) {
  if (!options_.request_logger) return;
  std::string note;
  {
    std::lock_guard<std::mutex> lock(ex.note_mu);
    note = ex.note;
  }
  options_.request_logger(RequestLog{
      .method = ex.method,
      .path = ex.path,
      .status = status,
      .bytes = bytes,
      .latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - ex.start),
      .completed = completed,
      .note = std::move(note)});
}

void HttpServer::Loop::BeginDrain() {
  draining_ = true;
  Ctl(EPOLL_CTL_DEL, listen_fd_, 0, kListenId);
  close(listen_fd_);  // from here on connect() is refused
  listen_fd_ = -1;
  accept_paused_ = false;
  std::vector<uint64_t> idle;
  for (auto& [id, c] : conns_) {
    if (!c->ex && !c->closing) idle.push_back(id);
  }
  for (uint64_t id : idle) CloseConn(*conns_.at(id));
}

const char* HttpServer::Loop::RequestTimeout(const Conn& c, Clock::time_point now) const {
  if (now - c.last_read > options_.idle_timeout)
    return "request not received within the idle timeout";
  if (!c.parser.headers_complete()) {
    return now - c.request_start > options_.header_timeout
               ? "request header section not received within the header timeout"
               : nullptr;
  }
  if (options_.min_body_rate == 0) return nullptr;
  const auto measured = now - c.headers_done - options_.body_rate_grace;
  if (measured <= Clock::duration::zero()) return nullptr;
  const double owed =
      std::chrono::duration<double>(measured).count() * static_cast<double>(options_.min_body_rate);
  return static_cast<double>(c.parser.request().body.size()) < owed
             ? "request body arriving slower than the minimum body rate"
             : nullptr;
}

void HttpServer::Loop::Tick(Clock::time_point now) {
  if (accept_paused_ && now >= accept_resume_ && listen_fd_ >= 0) {
    accept_paused_ = !Ctl(EPOLL_CTL_ADD, listen_fd_, EPOLLIN, kListenId);
    if (!accept_paused_) Accept();
  }
  const bool past_deadline =
      draining_ && now.time_since_epoch().count() >= deadline_ns_.load(std::memory_order_relaxed);
  std::vector<uint64_t> to_close;
  std::vector<uint64_t> to_time_out;
  for (auto& [id, c] : conns_) {
    if (past_deadline) {
      to_close.push_back(id);
    } else if (!c->OutEmpty() && now - c->last_write > options_.send_timeout) {
      to_close.push_back(id);  // the client stopped taking bytes
    } else if (c->shut_wr) {
      if (now >= c->linger_deadline) to_close.push_back(id);
    } else if (c->ex || c->closing) {
      continue;
    } else if (c->parser.in_progress()) {
      if (RequestTimeout(*c, now) != nullptr) to_time_out.push_back(id);
    } else if (now - c->last_read > options_.idle_timeout ||
               now - c->accepted >= options_.max_connection_lifetime) {
      to_close.push_back(id);  // idle keep-alive connection, quiet or too old
    }
  }
  for (uint64_t id : to_close) CloseConn(*conns_.at(id));
  for (uint64_t id : to_time_out) {
    Conn& c = *conns_.at(id);
    const char* why = RequestTimeout(c, now);
    SendError(c, 408, why != nullptr ? why : "request timed out");
    Flush(c);
  }
}

// ---------------------------------------------------------------------------------------------

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { Shutdown(std::chrono::milliseconds(0)); }

size_t HttpServer::buffered_bytes() const { return budget_ ? budget_->used() : 0; }

Status HttpServer::Start() {
  if (started_) return Status::InvalidArgument("server already started");
  if (!handler_) return Status::InvalidArgument("no request handler");
  if (options_.handler_threads < 1)
    return Status::InvalidArgument("handler_threads must be at least 1");
  if (options_.max_connections < 1)
    return Status::InvalidArgument("max_connections must be at least 1");
  if (options_.max_requests_per_connection < 1)
    return Status::InvalidArgument("max_requests_per_connection must be at least 1");
  if (options_.memory_budget == 0) return Status::InvalidArgument("memory_budget must not be 0");
  if (options_.header_timeout.count() <= 0 || options_.idle_timeout.count() <= 0)
    return Status::InvalidArgument("header_timeout and idle_timeout must be positive");
  if (options_.write_soft_limit > options_.write_hard_limit) {
    return Status::InvalidArgument("write_soft_limit is larger than write_hard_limit");
  }

  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    if (options_.raise_fd_limit && lim.rlim_cur < lim.rlim_max) {
      lim.rlim_cur = lim.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &lim) != 0) getrlimit(RLIMIT_NOFILE, &lim);
    }
    const rlim_t usable = lim.rlim_cur > static_cast<rlim_t>(2 * kFdHeadroom)
                              ? lim.rlim_cur - kFdHeadroom
                              : lim.rlim_cur / 2;
    max_connections_ =
        static_cast<int>(std::min<rlim_t>(usable, static_cast<rlim_t>(options_.max_connections)));
  } else {
    max_connections_ = options_.max_connections;
  }
  max_connections_ = std::max(max_connections_, 1);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port_str = std::to_string(options_.port);
  const int gai = getaddrinfo(options_.host.empty() ? nullptr : options_.host.c_str(),
                              port_str.c_str(), &hints, &res);
  if (gai != 0) {
    return Status::InvalidArgument("cannot resolve host '" + options_.host +
                                   "': " + gai_strerror(gai));
  }
  int listen_fd = -1;
  std::string error;
  for (addrinfo* ai = res; ai != nullptr && listen_fd < 0; ai = ai->ai_next) {
    const int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      error = "bind " + options_.host + ":" + port_str + ": " + std::strerror(errno);
      close(fd);
      continue;
    }
    if (listen(fd, options_.listen_backlog) != 0) {
      error = std::string("listen: ") + std::strerror(errno);
      close(fd);
      continue;
    }
    listen_fd = fd;
  }
  freeaddrinfo(res);
  if (listen_fd < 0) return Status::IoError(error.empty() ? "no address to listen on" : error);

  sockaddr_storage addr{};
  socklen_t addr_len = sizeof(addr);
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &addr_len);
  bound_port_ = addr.ss_family == AF_INET6
                    ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                    : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);

  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) {
    close(listen_fd);
    return Status::IoError(std::string("epoll_create1: ") + std::strerror(errno));
  }
  auto waker = std::make_shared<LoopWaker>();
  if (!waker->ok()) {
    close(listen_fd);
    close(epoll_fd);
    return Status::IoError(std::string("eventfd: ") + std::strerror(errno));
  }
  budget_ = std::make_shared<internal::MemoryBudget>(options_.memory_budget);
  workers_ = std::make_unique<WorkerPool>(options_.handler_threads, handler_);
  priority_workers_ = std::make_unique<WorkerPool>(1, handler_);
  loop_ = std::make_unique<Loop>(options_, max_connections_, &open_connections_, workers_.get(),
                                 priority_workers_.get(), listen_fd, epoll_fd, std::move(waker),
                                 budget_);
  if (Status st = loop_->Register(); !st.ok()) {
    loop_.reset();
    workers_.reset();
    priority_workers_.reset();
    return st;
  }
  loop_thread_ = std::thread([this] { loop_->Run(); });
  started_ = true;
  return Status::Ok();
}

void HttpServer::Shutdown(std::chrono::milliseconds grace) {
  if (!started_ || stopped_) return;
  stopped_ = true;
  loop_->RequestShutdown(Clock::now() + grace);
  loop_thread_.join();
  // Every connection is closed and every on-close callback has run: handlers waiting on their
  // writers return, and the workers can be joined.
  // The two pools wait in turn: at most twice handler_exit_timeout in all.
  abandoned_handlers_ = workers_->Stop(options_.handler_exit_timeout) +
                        priority_workers_->Stop(options_.handler_exit_timeout);
  loop_.reset();
  workers_.reset();
  priority_workers_.reset();
}

}  // namespace gannet::http
