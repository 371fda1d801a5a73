// SIGINT / SIGTERM as a value to wait for, not an asynchronous handler: the front end blocks both
// signals before starting any thread (so every thread inherits the mask and none is interrupted),
// then one thread waits for either and starts the graceful drain (HttpServer::Shutdown).
// Thread-safety: BlockTerminationSignals once, early in main; WaitForTerminationSignal from one
// thread.
#pragma once

#include <chrono>
#include <optional>

#include "base/status.h"

namespace gannet::http {

// Blocks SIGINT and SIGTERM in the calling thread (and threads it starts later).
Status BlockTerminationSignals();

// Waits until SIGINT or SIGTERM is pending and returns its number (consuming it), or nullopt when
// `timeout` passes first. REQUIRES: BlockTerminationSignals was called in this thread.
std::optional<int> WaitForTerminationSignal(
    std::optional<std::chrono::milliseconds> timeout = std::nullopt);

}  // namespace gannet::http
