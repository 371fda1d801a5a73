#include "base/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

namespace gannet {
namespace {

struct FreeDeleter {
  void operator()(uint64_t* p) const { std::free(p); }
};

// Sum of words [b, e): four independent accumulators so the loop is limited by loads, not by
// an add chain; the compiler vectorizes it for the baseline target.
uint64_t SumWords(const uint64_t* w, int64_t b, int64_t e) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = b;
  for (; i + 4 <= e; i += 4) {
    s0 += w[i];
    s1 += w[i + 1];
    s2 += w[i + 2];
    s3 += w[i + 3];
  }
  for (; i < e; ++i) s0 += w[i];
  return s0 + s1 + s2 + s3;
}

}  // namespace

Result<double> MeasureReadBandwidth(ThreadPool& pool, const ReadBandwidthOptions& options) {
  if (options.buffer_bytes < (size_t{1} << 20)) {
    return Status::InvalidArgument("bandwidth buffer must be at least 1 MiB");
  }
  if (options.passes < 1)
    return Status::InvalidArgument("bandwidth measurement needs at least one pass");
  const int64_t n_words = static_cast<int64_t>(options.buffer_bytes / sizeof(uint64_t));
  std::unique_ptr<uint64_t, FreeDeleter> buf(
      static_cast<uint64_t*>(std::malloc(n_words * sizeof(uint64_t))));
  if (buf == nullptr) {
    return Status::ResourceExhausted("cannot allocate " +
                                     std::to_string(options.buffer_bytes >> 20) +
                                     " MiB to measure memory bandwidth");
  }
  uint64_t* words = buf.get();
  // Written, not just allocated: untouched pages all map the one shared zero page, whose reads
  // would hit in cache.
  pool.ParallelFor(n_words, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) words[i] = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  });

  std::vector<uint64_t> sums(pool.size());  // consumed below so the reads cannot be elided
  double best = 0;
  uint64_t check = 0;
  for (int pass = 0; pass < options.passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.ParallelFor(n_words,
                     [&](int64_t b, int64_t e, int ti) { sums[ti] = SumWords(words, b, e); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t v : sums) check ^= v;
    if (s > 0) best = std::max(best, static_cast<double>(n_words * sizeof(uint64_t)) / s / 1e9);
  }
  // `check` depends on every word read; a volatile store keeps the compiler from dropping the
  // reads.
  volatile uint64_t sink = check;
  (void)sink;
  if (best <= 0) return Status::Internal("memory bandwidth pass took no measurable time");
  return best;
}

}  // namespace gannet
