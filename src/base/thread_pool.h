// A persistent pool of worker threads for data-parallel kernels.
//
// Run(fn) calls fn(thread_index, n_threads) once for every index in [0, n_threads) and returns
// when all have finished. Index 0 runs on the caller; index i on worker i, unless worker i has
// not started it by the time the caller finished its own: then the caller runs it too (each
// index is claimed exactly once, per Run). So the partition a job makes of its work by index is
// the same either way (same results, bit for bit), and a worker the OS has not scheduled (a busy
// machine, more threads than free cores, a worker still waking up) never holds the caller up:
// fork-join per kernel would otherwise wait a scheduler time slice for it, hundreds of times per
// decode step. A job must therefore not wait for another index of the same Run (no barrier
// inside fn); per-index scratch stays private to the index, as only one thread runs it.
// Workers spin briefly between jobs and then sleep, so back-to-back kernel launches on the token
// path cost a few hundred nanoseconds and an idle process costs nothing. No allocation per Run.
//
// Prefetch after a Run (PrefetchAfterNextRun): memory the job after the next Run reads first (the
// next matmul's first weight rows) is split by thread index, and each index's part is
// software-prefetched by the thread that ran that index as soon as it is done, while the
// other threads finish theirs and the cheap ops between two matmuls run, so the next job does not
// start cold from DRAM. A worker prefetches after it has reported its index done: the caller's
// wait never includes a worker's prefetch.
// Thread-safety: Run and PrefetchAfterNextRun may be called from one thread at a time (the
// engine's step thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace gannet {

class ThreadPool {
 public:
  // n_threads <= 0 means one thread per hardware core.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  template <typename F>
  void Run(F&& fn) {
    RunImpl(&Trampoline<std::remove_reference_t<F>>, &fn);
  }

  // Splits [0, n) into contiguous chunks, one per thread: fn(begin, end, thread_index).
  template <typename F>
  void ParallelFor(int64_t n, F&& fn) {
    Run([&](int ti, int nt) {
      const int64_t per = (n + nt - 1) / nt;
      const int64_t b = per * ti;
      const int64_t e = b + per < n ? b + per : n;
      if (b < e) fn(b, e, ti);
    });
  }

  static int HardwareThreads();

  struct MemoryRange {
    const void* data = nullptr;
    size_t bytes = 0;
  };
  static constexpr int kMaxPrefetchRanges = 8;
  // The next Run (only that one) prefetches `ranges` (at most kMaxPrefetchRanges; more are
  // ignored) after its job: index i of n_threads takes the i-th of n_threads equal, cache-line
  // aligned parts of each range. Replaces a hint no Run has taken yet; an empty span clears it.
  // Prefetching never faults, so a range may be memory that is gone by then (a wasted hint).
  void PrefetchAfterNextRun(std::span<const MemoryRange> ranges);
  // What prefetches one part (default: a software prefetch per cache line). For tests, which
  // record the parts instead. REQUIRES: no Run in flight.
  using PrefetchFn = void (*)(const void* data, size_t bytes);
  void set_prefetch_fn(PrefetchFn fn) { prefetch_fn_ = fn; }

 private:
  struct PrefetchList {
    MemoryRange ranges[kMaxPrefetchRanges];
    int n = 0;
  };
  using JobFn = void (*)(void* ctx, int thread_index, int n_threads);
  template <typename F>
  static void Trampoline(void* ctx, int ti, int nt) {
    (*static_cast<F*>(ctx))(ti, nt);
  }
  void RunImpl(JobFn fn, void* ctx);
  void WorkerLoop(int index, uint64_t seen);
  // Takes index `index` of generation g's job for the calling thread; false when another thread
  // took it (the worker, or the caller on the worker's behalf).
  bool Claim(int index, uint64_t g);
  // Prefetches index `index`'s parts of `list`.
  void PrefetchPart(const PrefetchList& list, int index) const;

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  JobFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> sleepers_{0};
  // [n_threads]: the last generation whose index i was claimed (index 0 is always the caller's).
  std::unique_ptr<std::atomic<uint64_t>[]> claimed_;
  PrefetchList next_prefetch_;  // for the next Run (caller's thread only)
  PrefetchList job_prefetch_;   // the running job's, published with its generation
  PrefetchFn prefetch_fn_;
};

}  // namespace gannet
