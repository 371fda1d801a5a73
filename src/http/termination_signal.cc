#include "http/termination_signal.h"

#include <signal.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>

namespace gannet::http {
namespace {

sigset_t TerminationSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

Status BlockTerminationSignals() {
  const sigset_t set = TerminationSet();
  const int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (rc != 0) return Status::Internal(std::string("pthread_sigmask: ") + std::strerror(rc));
  return Status::Ok();
}

std::optional<int> WaitForTerminationSignal(std::optional<std::chrono::milliseconds> timeout) {
  const sigset_t set = TerminationSet();
  while (true) {
    int sig = -1;
    if (timeout) {
      const auto ms = timeout->count();
      timespec ts{.tv_sec = static_cast<time_t>(ms / 1000),
                  .tv_nsec = static_cast<long>((ms % 1000) * 1000000)};
      sig = sigtimedwait(&set, nullptr, &ts);
      if (sig < 0 && errno == EAGAIN) return std::nullopt;
    } else {
      sig = sigwaitinfo(&set, nullptr);
    }
    if (sig >= 0) return sig;
    // EINTR: another signal's handler ran; keep waiting (a retry restarts the timeout, which only
    // lengthens the wait).
  }
}

}  // namespace gannet::http
