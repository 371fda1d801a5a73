// Status and Result<T>: errors as values at module boundaries (STYLE.md rule 2).
//
// A Status is either OK or carries a code and a message a user can act on.
// Result<T> holds a T or a non-OK Status. Neither throws.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace gannet {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller passed something malformed
  kNotFound,         // a file, key or tensor is missing
  kIoError,          // the operating system refused (open, mmap, read)
  kCorrupt,          // a file's contents contradict themselves or its size
  kUnsupported,      // well-formed, but gannet does not handle it (yet)
  kOutOfRange,       // a value is outside what is allowed (context length, ...)
  kResourceExhausted,
  kInternal,
  kUnavailable,  // not now (shutting down, not ready): retry elsewhere or later
};

const char* StatusCodeName(StatusCode code);

class Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Corrupt(std::string m) { return {StatusCode::kCorrupt, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: tensor 'x' data ends past the end of the file"
  std::string ToString() const;

  // Returns a copy whose message is "context: message" (keeps the code).
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

// Aborts with a message: only for true invariants of gannet's own code, never for user input.
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr);

}  // namespace gannet

#define GANNET_CHECK(cond)                                         \
  do {                                                             \
    if (!(cond)) ::gannet::CheckFailed(__FILE__, __LINE__, #cond); \
  } while (0)

#define GANNET_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::gannet::Status gannet_status_ = (expr);        \
    if (!gannet_status_.ok()) return gannet_status_; \
  } while (0)

#define GANNET_CONCAT_INNER(a, b) a##b
#define GANNET_CONCAT(a, b) GANNET_CONCAT_INNER(a, b)
#define GANNET_ASSIGN_OR_RETURN(lhs, expr) \
  GANNET_ASSIGN_OR_RETURN_IMPL(GANNET_CONCAT(gannet_result_, __LINE__), lhs, expr)
#define GANNET_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
