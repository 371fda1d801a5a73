#include "http/response_writer.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "http/exchange.h"
#include "http/http_parser.h"

namespace gannet::http {
namespace internal {

LoopWaker::LoopWaker() : event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

LoopWaker::~LoopWaker() {
  if (event_fd_ >= 0) close(event_fd_);
}

void LoopWaker::Post(std::shared_ptr<Exchange> ex) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    wake = ready_.empty();
    ready_.push_back(std::move(ex));
  }
  if (wake) Wake();
}

void LoopWaker::Wake() {
  const uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the loop will wake anyway.
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof(one));
}

std::vector<std::shared_ptr<Exchange>> LoopWaker::Take() {
  uint64_t counter = 0;
  [[maybe_unused]] ssize_t n = read(event_fd_, &counter, sizeof(counter));
  std::lock_guard<std::mutex> lock(mu_);
  return std::move(ready_);
}

void LoopWaker::Stop() {
  std::vector<std::shared_ptr<Exchange>> drop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    drop.swap(ready_);
  }
}

}  // namespace internal

namespace {

using internal::Exchange;

bool IsTokenChar(unsigned char c) {
  if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~")) {
    if (c == static_cast<unsigned char>(t)) return true;
  }
  return false;
}

Status ValidateHeaders(const HeaderList& headers) {
  for (const auto& [name, value] : headers) {
    if (name.empty()) return Status::InvalidArgument("empty response header name");
    for (unsigned char c : name) {
      if (!IsTokenChar(c))
        return Status::InvalidArgument("malformed response header name '" + name + "'");
    }
    for (std::string_view reserved :
         {"Content-Length", "Transfer-Encoding", "Connection", "Date"}) {
      if (EqualsIgnoreCase(name, reserved)) {
        return Status::InvalidArgument("response header " + name + " is set by the server");
      }
    }
    for (unsigned char c : value) {
      // CR or LF in a value would let it start a header of its own (response splitting).
      if (c == '\r' || c == '\n' || c == '\0') {
        return Status::InvalidArgument("response header " + name +
                                       " has a line break or NUL in its value");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

void internal::AppendHttpDate(std::string* out) {
  char buf[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  const size_t n = std::strftime(buf, sizeof(buf), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  out->append(buf, n);
}

namespace {

// Status line, the handler's headers, Date and Connection. REQUIRES: ex.mu held.
std::string HeadLocked(Exchange& ex, int status, const HeaderList& headers) {
  if (ex.waker->draining.load(std::memory_order_relaxed)) ex.keep_alive = false;
  std::string out;
  out.reserve(256);
  out.append("HTTP/1.1 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(HttpReasonPhrase(status));
  out.append("\r\n");
  for (const HeaderList* list : {static_cast<const HeaderList*>(&ex.extra_headers), &headers}) {
    for (const auto& [name, value] : *list) {
      out.append(name);
      out.append(": ");
      out.append(value);
      out.append("\r\n");
    }
  }
  internal::AppendHttpDate(&out);
  if (!ex.keep_alive) {
    out.append("Connection: close\r\n");
    ex.close_after = true;
  } else if (ex.version_minor == 0) {
    out.append("Connection: keep-alive\r\n");
  }
  return out;
}

Status CheckStartable(const Exchange& ex, int status) {
  if (ex.phase != Exchange::Phase::kNotStarted)
    return Status::InvalidArgument("response already started");
  if (ex.closed || ex.abort) return Status::IoError("connection closed");
  if (status < 200 || status > 999)
    return Status::InvalidArgument("response status must be 200..999");
  return Status::Ok();
}

}  // namespace

ResponseWriter::ResponseWriter(std::shared_ptr<internal::Exchange> exchange)
    : ex_(std::move(exchange)) {}

ResponseWriter::~ResponseWriter() {
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(ex_->mu);
    if (ex_->closed || ex_->phase == Exchange::Phase::kDone) return;
    if (ex_->phase == Exchange::Phase::kNotStarted) {
      // The handler forgot to answer: a 500 is better than a client waiting forever.
      static constexpr std::string_view kBody =
          "{\"error\":{\"message\":\"the request handler returned no "
          "response\",\"type\":\"server_error\"}}";
      ex_->status = 500;
      std::string out = HeadLocked(*ex_, 500, {{"Content-Type", "application/json"}});
      out.append("Content-Length: " + std::to_string(kBody.size()) + "\r\n\r\n");
      if (!ex_->head_request) out.append(kBody);
      ex_->phase = Exchange::Phase::kDone;
      post = ex_->AppendLocked(out);
    } else {
      // A stream that never ended: deliver what was queued, then close without the last chunk,
      // so the client sees a truncated response rather than one that looks complete.
      ex_->truncated = true;
      ex_->close_after = true;
      ex_->phase = Exchange::Phase::kDone;
      post = ex_->MarkQueuedLocked();
    }
  }
  if (post) ex_->waker->Post(ex_);
}

Status ResponseWriter::Send(int status, std::string content_type, std::string body) {
  return Send(HttpResponse{.status = status,
                           .headers = {{"Content-Type", std::move(content_type)}},
                           .body = std::move(body)});
}

Status ResponseWriter::Send(HttpResponse response) {
  GANNET_RETURN_IF_ERROR(ValidateHeaders(response.headers));
  bool post = false;
  bool over_budget = false;
  {
    std::lock_guard<std::mutex> lock(ex_->mu);
    GANNET_RETURN_IF_ERROR(CheckStartable(*ex_, response.status));
    // 204 and 304 carry no body and no Content-Length (RFC 9110 §8.6).
    const bool no_body = response.status == 204 || response.status == 304;
    if (no_body && !response.body.empty()) {
      return Status::InvalidArgument("a " + std::to_string(response.status) +
                                     " response has no body");
    }
    ex_->phase = Exchange::Phase::kDone;
    if (!ex_->budget->Fits(response.body.size())) {
      // Past the server's memory budget for queued responses: drop the connection rather than
      // queue more (the client sees it close, never a response that looks complete).
      over_budget = true;
      ex_->abort = true;
      post = ex_->MarkQueuedLocked();
    } else {
      ex_->status = response.status;
      std::string out = HeadLocked(*ex_, response.status, response.headers);
      if (!no_body) out.append("Content-Length: " + std::to_string(response.body.size()) + "\r\n");
      out.append("\r\n");
      if (!ex_->head_request) out.append(response.body);
      post = ex_->AppendLocked(out);
    }
  }
  if (post) ex_->waker->Post(ex_);
  if (over_budget) return Status::ResourceExhausted("the server's response memory budget is spent");
  return Status::Ok();
}

Status ResponseWriter::StartStream(int status, HeaderList headers) {
  GANNET_RETURN_IF_ERROR(ValidateHeaders(headers));
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(ex_->mu);
    GANNET_RETURN_IF_ERROR(CheckStartable(*ex_, status));
    if (status == 204 || status == 304)
      return Status::InvalidArgument("a 204/304 response cannot stream");
    // HTTP/1.0 has no chunked coding: the end of the stream is the end of the connection.
    if (ex_->version_minor == 0) ex_->keep_alive = false;
    ex_->status = status;
    std::string out = HeadLocked(*ex_, status, headers);
    if (ex_->version_minor >= 1) out.append("Transfer-Encoding: chunked\r\n");
    out.append("\r\n");
    ex_->phase = Exchange::Phase::kStreaming;
    post = ex_->AppendLocked(out);
  }
  if (post) ex_->waker->Post(ex_);
  return Status::Ok();
}

WriteResult ResponseWriter::Write(std::string_view data) {
  bool post = false;
  WriteResult result = WriteResult::kOk;
  {
    std::lock_guard<std::mutex> lock(ex_->mu);
    if (ex_->closed || ex_->abort || ex_->phase != Exchange::Phase::kStreaming)
      return WriteResult::kClosed;
    const bool behind = ex_->unflushed > ex_->soft_limit || ex_->budget->Pressed();
    if (data.empty() || ex_->head_request) {
      return behind ? WriteResult::kBackpressure : WriteResult::kOk;
    }
    if (ex_->unflushed + data.size() > ex_->hard_limit || !ex_->budget->Fits(data.size())) {
      // The client is not reading (or all clients together hold the whole memory budget): drop
      // it rather than hold unbounded memory.
      ex_->abort = true;
      post = ex_->MarkQueuedLocked();
      result = WriteResult::kClosed;
    } else {
      if (ex_->version_minor >= 1) {
        char size_line[32];
        const int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", data.size());
        post = ex_->AppendLocked(std::string_view(size_line, static_cast<size_t>(n)));
        ex_->AppendLocked(data);
        ex_->AppendLocked("\r\n");
      } else {
        post = ex_->AppendLocked(data);
      }
      result = ex_->unflushed > ex_->soft_limit || ex_->budget->Pressed()
                   ? WriteResult::kBackpressure
                   : WriteResult::kOk;
    }
  }
  if (post) ex_->waker->Post(ex_);
  return result;
}

Status ResponseWriter::End() {
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(ex_->mu);
    if (ex_->phase != Exchange::Phase::kStreaming)
      return Status::InvalidArgument("no stream to end");
    if (ex_->closed || ex_->abort) return Status::IoError("connection closed");
    ex_->phase = Exchange::Phase::kDone;
    if (ex_->version_minor >= 1 && !ex_->head_request) {
      post = ex_->AppendLocked("0\r\n\r\n");
    } else {
      post = ex_->MarkQueuedLocked();
    }
  }
  if (post) ex_->waker->Post(ex_);
  return Status::Ok();
}

bool ResponseWriter::IsClosed() const {
  std::lock_guard<std::mutex> lock(ex_->mu);
  return ex_->closed || ex_->abort;
}

void ResponseWriter::SetOnClose(std::function<void()> on_close) {
  {
    std::lock_guard<std::mutex> lock(ex_->mu);
    if (ex_->finished)
      return;  // delivered: the callback could never run, and must not pin the writer
    if (!ex_->closed) {
      ex_->on_close = std::move(on_close);
      return;
    }
  }
  if (on_close) on_close();
}

Status ResponseWriter::AddHeader(std::string name, std::string value) {
  HeaderList one{{std::move(name), std::move(value)}};
  GANNET_RETURN_IF_ERROR(ValidateHeaders(one));
  std::lock_guard<std::mutex> lock(ex_->mu);
  if (ex_->phase != Exchange::Phase::kNotStarted)
    return Status::InvalidArgument("response already started");
  ex_->extra_headers.push_back(std::move(one.front()));
  return Status::Ok();
}

void ResponseWriter::SetLogNote(std::string note) {
  std::lock_guard<std::mutex> lock(ex_->note_mu);
  ex_->note = std::move(note);
}

bool ResponseWriter::WaitWritable(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(ex_->mu);
  ex_->writable_cv.wait_for(lock, timeout, [&] {
    return ex_->closed || ex_->abort || ex_->unflushed <= ex_->soft_limit;
  });
  return !ex_->closed && !ex_->abort && ex_->unflushed <= ex_->soft_limit;
}

size_t ResponseWriter::queued_bytes() const {
  std::lock_guard<std::mutex> lock(ex_->mu);
  return ex_->unflushed;
}

}  // namespace gannet::http
