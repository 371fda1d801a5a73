// Measured memory read bandwidth: how fast this machine streams a buffer far larger than its
// caches, with a given thread pool. `gannet bench` reports it next to token generation, whose
// speed is bound by it (every generated token reads every weight once), and measures it in the
// same run because on a shared host it changes from minute to minute.
// Thread-safety: uses the pool; call from the thread that owns the pool's Run.
#pragma once

#include <cstddef>

#include "base/status.h"
#include "base/thread_pool.h"

namespace gannet {

struct ReadBandwidthOptions {
  size_t buffer_bytes = size_t{256} << 20;  // far larger than any last-level cache this targets
  int passes = 3;                           // timed passes over the buffer; the best one counts
};

// Fills a fresh buffer (each thread first-touches its own part), then times `passes` parallel
// sequential reads of all of it and returns the fastest in GB/s (1e9 bytes per second), as STREAM
// does: slower passes measure interference, not the memory system. The buffer is freed before
// returning, so the process's resident size goes back to what it was.
// Errors: InvalidArgument for a buffer under 1 MiB or passes < 1; ResourceExhausted when the
// buffer cannot be allocated.
Result<double> MeasureReadBandwidth(ThreadPool& pool, const ReadBandwidthOptions& options);

}  // namespace gannet
