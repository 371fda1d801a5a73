#include "base/core_latency.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GANNET_LATENCY_PAUSE() _mm_pause()
#else
#define GANNET_LATENCY_PAUSE() ((void)0)
#endif

namespace gannet {
namespace {

// The two flags on lines of their own, so each trip moves exactly one line each way.
struct alignas(64) Flag {
  std::atomic<int> value{0};
};

// Waits until flag holds `want`: pauses, then yields now and then, so that on a machine with one
// free CPU (the two threads sharing it) each trip costs a switch, not a time slice of spinning.
// ~100 us of pauses before the first yield: far longer than any trip between two running cores.
void WaitFor(const Flag& flag, int want) {
  constexpr int kSpinsBeforeYield = 4096;
  for (int spins = 0; flag.value.load(std::memory_order_acquire) != want; ++spins) {
    if (spins < kSpinsBeforeYield) {
      GANNET_LATENCY_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace

Result<double> MeasureCoreRoundTripNs(int round_trips, int trials) {
  if (round_trips < 1 || trials < 1) {
    return Status::InvalidArgument("core round trip: round_trips and trials must be >= 1");
  }
  const int total = round_trips * trials;
  Flag ping, pong;
  std::thread echo([&] {
    for (int i = 1; i <= total; ++i) {
      WaitFor(ping, i);
      pong.value.store(i, std::memory_order_release);
    }
  });
  std::vector<double> ns;
  int i = 0;
  for (int t = 0; t < trials; ++t) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < round_trips; ++k) {
      ++i;
      ping.value.store(i, std::memory_order_release);
      WaitFor(pong, i);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ns.push_back(s * 1e9 / round_trips);
  }
  echo.join();
  std::sort(ns.begin(), ns.end());
  return ns[ns.size() / 2];
}

}  // namespace gannet
