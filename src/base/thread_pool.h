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
// Thread-safety: Run may be called from one thread at a time (the engine's step thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
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

 private:
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
};

}  // namespace gannet
