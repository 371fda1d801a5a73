#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
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

// PrefetchAfterNextRun: the next Run's threads cover every cache line of every range exactly once
// (index i's part by whichever thread ran index i, also when the caller ran it for a late worker),
// nothing outside the ranges' lines, and only that Run does.
std::mutex prefetch_mu;
std::map<uintptr_t, int>* prefetched_lines = nullptr;

void RecordPrefetch(const void* data, size_t bytes) {
  std::lock_guard<std::mutex> lock(prefetch_mu);
  const auto at = reinterpret_cast<uintptr_t>(data);
  EXPECT_EQ(at % 64, 0u);
  EXPECT_EQ(bytes % 64, 0u);
  for (uintptr_t line = at / 64; line < (at + bytes) / 64; ++line) ++(*prefetched_lines)[line];
}

int PrefetchedLineCount() {
  std::lock_guard<std::mutex> lock(prefetch_mu);
  int n = 0;
  for (const auto& [line, count] : *prefetched_lines) n += count;
  return n;
}

TEST(ThreadPoolTest, PrefetchAfterNextRunCoversEachLineOnceForOneRun) {
  alignas(64) static uint8_t buf[64 * 1024];
  std::map<uintptr_t, int> lines;
  prefetched_lines = &lines;
  // Unaligned starts and ends, a 1-byte range, and one range past the limit of 8 (ignored).
  std::vector<ThreadPool::MemoryRange> ranges = {
      {buf + 3, 1000}, {buf + 4096, 64 * 7}, {buf + 8191, 1}, {buf + 9000, 20000}};
  for (int k = 0; k < 5; ++k) ranges.push_back({buf + 30000 + 4000 * k, 100});
  std::map<uintptr_t, int> want;
  for (size_t k = 0; k < ThreadPool::kMaxPrefetchRanges; ++k) {
    const auto b = reinterpret_cast<uintptr_t>(ranges[k].data);
    for (uintptr_t line = b / 64; line <= (b + ranges[k].bytes - 1) / 64; ++line) ++want[line];
  }
  int want_count = 0;
  for (const auto& [line, count] : want) want_count += count;
  for (int n : {1, 2, 3, 4 * ThreadPool::HardwareThreads() + 3}) {
    ThreadPool pool(n);
    pool.set_prefetch_fn(&RecordPrefetch);
    for (int round = 0; round < 50; ++round) {
      {
        std::lock_guard<std::mutex> lock(prefetch_mu);
        lines.clear();
      }
      pool.PrefetchAfterNextRun(ranges);
      pool.Run([](int, int) {});
      // Workers prefetch after reporting done: wait for their parts.
      for (int wait = 0; wait < 2000 && PrefetchedLineCount() < want_count; ++wait)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      pool.Run([](int, int) {});  // no hint: no prefetch
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::lock_guard<std::mutex> lock(prefetch_mu);
      ASSERT_EQ(lines, want) << n << " threads, round " << round;
    }
    // An empty hint clears one given before it.
    {
      std::lock_guard<std::mutex> lock(prefetch_mu);
      lines.clear();
    }
    pool.PrefetchAfterNextRun(ranges);
    pool.PrefetchAfterNextRun({});
    pool.Run([](int, int) {});
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(PrefetchedLineCount(), 0);
  }
  prefetched_lines = nullptr;
}

}  // namespace
}  // namespace gannet
