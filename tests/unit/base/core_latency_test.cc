#include "base/core_latency.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <chrono>

namespace gannet {
namespace {

TEST(CoreRoundTrip, IsPositiveAndBounded) {
  Result<double> ns = MeasureCoreRoundTripNs(2000, 3);
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  // A cache line's round trip is tens of nanoseconds to a few microseconds; on a machine with
  // fewer free cores than threads the echo thread may wait for a time slice, hence the bound.
  EXPECT_GT(*ns, 1.0);
  EXPECT_LT(*ns, 1e7);
}

// Both threads on one CPU (as under `taskset -c 0`, or on a one-core machine): each trip must
// cost a thread switch, not a scheduler time slice of spinning (20000 x 3 trips of a few
// milliseconds each would take minutes).
TEST(CoreRoundTrip, EndsQuicklyWithOneCpu) {
  cpu_set_t before;
  ASSERT_EQ(sched_getaffinity(0, sizeof(before), &before), 0);
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &before)) ++cpu;
  ASSERT_LT(cpu, CPU_SETSIZE);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);  // the echo thread inherits it
  const auto t0 = std::chrono::steady_clock::now();
  Result<double> ns = MeasureCoreRoundTripNs(2000, 3);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(sched_setaffinity(0, sizeof(before), &before), 0);
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  EXPECT_GT(*ns, 1.0);
  EXPECT_LT(s, 5.0);
}

TEST(CoreRoundTrip, RejectsNonPositiveCounts) {
  EXPECT_EQ(MeasureCoreRoundTripNs(0, 3).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasureCoreRoundTripNs(10, 0).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gannet
