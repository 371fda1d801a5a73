#include "base/memory_bandwidth.h"

#include <gtest/gtest.h>

#include <cmath>

namespace gannet {
namespace {

TEST(MemoryBandwidthTest, MeasuresAPositiveFiniteRate) {
  for (int n : {1, 2}) {
    ThreadPool pool(n);
    Result<double> gbps =
        MeasureReadBandwidth(pool, {.buffer_bytes = size_t{16} << 20, .passes = 2});
    ASSERT_TRUE(gbps.ok()) << gbps.status().ToString();
    EXPECT_TRUE(std::isfinite(*gbps));
    // Any machine this runs on reads faster than 10 MB/s and slower than 100 TB/s.
    EXPECT_GT(*gbps, 0.01);
    EXPECT_LT(*gbps, 1e5);
  }
}

TEST(MemoryBandwidthTest, OddBufferSizeIsFine) {
  ThreadPool pool(3);
  Result<double> gbps =
      MeasureReadBandwidth(pool, {.buffer_bytes = (size_t{1} << 20) + 12345, .passes = 1});
  ASSERT_TRUE(gbps.ok()) << gbps.status().ToString();
  EXPECT_GT(*gbps, 0);
}

TEST(MemoryBandwidthTest, RejectsBadOptions) {
  ThreadPool pool(1);
  EXPECT_EQ(MeasureReadBandwidth(pool, {.buffer_bytes = 1024, .passes = 1}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      MeasureReadBandwidth(pool, {.buffer_bytes = size_t{1} << 20, .passes = 0}).status().code(),
      StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gannet
