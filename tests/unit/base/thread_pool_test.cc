#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace gannet {
namespace {

TEST(ThreadPoolTest, RunCallsEveryThreadOnce) {
  for (int n : {1, 2, 3, 8}) {
    ThreadPool pool(n);
    EXPECT_EQ(pool.size(), n);
    std::vector<std::atomic<int>> hits(n);
    for (int round = 0; round < 200; ++round) {
      pool.Run([&](int ti, int nt) {
        EXPECT_EQ(nt, n);
        hits[ti].fetch_add(1);
      });
    }
    for (int i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 200) << "thread " << i;
  }
}

// More threads than cores: workers are often not running when a job starts, and the caller runs
// their indexes instead. Each index must still run exactly once per Run, whoever runs it, and
// the results of every index be visible when Run returns.
TEST(ThreadPoolTest, EachIndexRunsOncePerRunWhenOversubscribed) {
  const int n = 4 * ThreadPool::HardwareThreads() + 3;
  ThreadPool pool(n);
  std::vector<int> runs(n);
  std::vector<int64_t> out(n);
  for (int64_t round = 0; round < 3000; ++round) {
    std::fill(runs.begin(), runs.end(), 0);
    pool.Run([&](int ti, int nt) {
      ASSERT_EQ(nt, n);
      ++runs[ti];  // only one thread runs index ti in this Run
      out[ti] = round * n + ti;
    });
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(runs[i], 1) << "round " << round << " index " << i;
      ASSERT_EQ(out[i], round * n + i) << "round " << round << " index " << i;
    }
    // Now and then let the workers fall asleep, so that some Runs start with them sleeping.
    if (round % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

TEST(ThreadPoolTest, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 2, 3, 7, 1000}) {
    std::vector<std::atomic<int>> seen(n);
    pool.ParallelFor(n, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) seen[i].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[i].load(), 1);
  }
}

TEST(ThreadPoolTest, ResultsVisibleAfterRun) {
  ThreadPool pool(2);
  std::vector<int64_t> out(2);
  for (int64_t r = 0; r < 10000; ++r) {
    pool.Run([&](int ti, int) { out[ti] = r * 2 + ti; });
    ASSERT_EQ(out[0], r * 2);
    ASSERT_EQ(out[1], r * 2 + 1);
  }
}

TEST(ThreadPoolTest, WorkersSleepAndWakeUp) {
  ThreadPool pool(2);
  std::atomic<int> count{0};
  pool.Run([&](int, int) { count++; });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // past the spin phase
  pool.Run([&](int, int) { count++; });
  EXPECT_EQ(count.load(), 4);
}

}  // namespace
}  // namespace gannet
