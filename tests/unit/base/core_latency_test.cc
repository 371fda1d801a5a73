#include "base/core_latency.h"

#include <gtest/gtest.h>

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

TEST(CoreRoundTrip, RejectsNonPositiveCounts) {
  EXPECT_EQ(MeasureCoreRoundTripNs(0, 3).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasureCoreRoundTripNs(10, 0).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gannet
