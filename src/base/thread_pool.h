// A persistent pool of worker threads for data-parallel kernels.
//
// Run(fn) calls fn(thread_index, n_threads) once on every thread, the caller included as
// index 0, and returns when all have finished. Workers spin briefly between jobs and then
// sleep, so back-to-back kernel launches on the token path cost a few hundred nanoseconds and
// an idle process costs nothing. No allocation per Run.
// Thread-safety: Run may be called from one thread at a time (the engine's step thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
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
};

}  // namespace gannet
