// Internal to http/: the state one request's ResponseWriter shares with the event loop.
// Not part of the module's interface.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/response_writer.h"

namespace gannet::http::internal {

struct Exchange;

// The server-wide budget for bytes held in buffered request bodies and queued response bytes.
// Shared (like LoopWaker) by the server and every live exchange. Thread-safe (atomic).
class MemoryBudget {
 public:
  explicit MemoryBudget(size_t limit) : limit_(limit) {}
  size_t limit() const { return limit_; }
  size_t used() const { return used_.load(std::memory_order_relaxed); }
  // Whether `n` more bytes fit (a check, not a reservation: writers serialize per exchange only,
  // so the budget may be passed by at most one write per exchange).
  bool Fits(size_t n) const { return used() + n <= limit_; }
  // Past half the budget writers are told to slow down.
  bool Pressed() const { return used() > limit_ / 2; }
  void Charge(size_t n) { used_.fetch_add(n, std::memory_order_relaxed); }
  void Release(size_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }

 private:
  const size_t limit_;
  std::atomic<size_t> used_{0};
};

// Appends "Date: <IMF-fixdate>\r\n" (RFC 9110 §6.6.1: an origin server with a clock sends it).
void AppendHttpDate(std::string* out);

// How writers on any thread tell the event loop that an exchange has bytes or news: a list of
// exchanges plus an eventfd the loop polls. Shared by the server and every live exchange, so a
// writer that outlives the server still has something valid to talk to.
class LoopWaker {
 public:
  LoopWaker();
  ~LoopWaker();
  LoopWaker(const LoopWaker&) = delete;
  LoopWaker& operator=(const LoopWaker&) = delete;

  bool ok() const { return event_fd_ >= 0; }
  int event_fd() const { return event_fd_; }
  // Queues `ex` for the loop and wakes it (one eventfd write per batch). Dropped after Stop().
  void Post(std::shared_ptr<Exchange> ex);
  // Wakes the loop without news (shutdown requests).
  void Wake();
  // Loop thread: takes the queued exchanges and clears the eventfd counter.
  std::vector<std::shared_ptr<Exchange>> Take();
  // The loop is gone: drop queued exchanges (they hold this object) and refuse new ones.
  void Stop();

  // Set when the server starts draining: responses that have not sent headers yet say
  // "Connection: close".
  std::atomic<bool> draining{false};

 private:
  int event_fd_ = -1;
  std::mutex mu_;
  std::vector<std::shared_ptr<Exchange>> ready_;
  bool stopped_ = false;
};

struct Exchange : std::enable_shared_from_this<Exchange> {
  enum class Phase { kNotStarted, kStreaming, kDone };

  // Fixed at creation (event loop), read by any thread.
  uint64_t conn_id = 0;
  std::shared_ptr<LoopWaker> waker;
  std::shared_ptr<MemoryBudget> budget;  // charged with `unflushed`
  bool head_request = false;
  int version_minor = 1;
  size_t soft_limit = 0;
  size_t hard_limit = 0;
  std::string method;
  std::string path;
  std::chrono::steady_clock::time_point start;

  // Extra words for the access-log record (ResponseWriter::SetLogNote); guarded by note_mu.
  mutable std::mutex note_mu;
  std::string note;

  std::mutex mu;
  std::condition_variable writable_cv;
  // Everything below is guarded by mu.
  Phase phase = Phase::kNotStarted;
  bool keep_alive = true;    // false: the response says "Connection: close"
  bool close_after = false;  // the connection closes once this response is flushed
  bool abort = false;        // the writer wants the connection dropped now
  bool truncated = false;    // the stream was abandoned: flush what is queued, then close
  bool closed = false;       // the connection is gone; nothing more is accepted
  bool finished = false;     // the whole response reached the socket; on_close will never run
  bool queued = false;       // on the waker's list
  std::string pending;       // bytes the loop has not taken yet
  size_t unflushed = 0;      // pending + taken by the loop but not yet accepted by the socket
  int status = 0;
  std::function<void()> on_close;
  HeaderList extra_headers;  // ResponseWriter::AddHeader: sent with whatever response starts

  // Appends bytes (REQUIRES: mu held) and returns whether the caller must Post after unlocking.
  bool AppendLocked(std::string_view bytes) {
    pending.append(bytes);
    unflushed += bytes.size();
    budget->Charge(bytes.size());
    return MarkQueuedLocked();
  }
  // `n` queued bytes reached the socket or were dropped (REQUIRES: mu held).
  void ReleaseLocked(size_t n) {
    n = std::min(n, unflushed);
    unflushed -= n;
    budget->Release(n);
  }
  bool MarkQueuedLocked() {
    if (queued) return false;
    queued = true;
    return true;
  }
};

}  // namespace gannet::http::internal
