// Measured round trip of one cache line between two threads: what a thread pool's hand-off between
// cores costs on this machine. On a virtual machine whose two vCPUs the host places sometimes on
// cores that share a last-level cache (~100 ns) and sometimes on cores of different dies (~400-600
// ns), decoding a batch (many small hand-offs per step) and a single sequence (one memory stream
// per die) change speed with it; `gannet bench --parallel` reports it beside its figures.
// Thread-safety: starts and joins one thread of its own; any thread may call it.
#pragma once

#include "base/status.h"

namespace gannet {

// The median of `trials` timings of `round_trips` ping-pong round trips of one cache line between
// the calling thread and a thread of its own, in nanoseconds per round trip. The OS places the
// two threads (nothing is pinned), as it places a pool's; with one CPU between them a trip is a
// pair of thread switches (the waits yield), so the call still ends in well under a second at the
// defaults. Errors: InvalidArgument for round_trips < 1 or trials < 1.
Result<double> MeasureCoreRoundTripNs(int round_trips = 20000, int trials = 3);

}  // namespace gannet
