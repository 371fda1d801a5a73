#include "base/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GANNET_PAUSE() _mm_pause()
#else
#define GANNET_PAUSE() ((void)0)
#endif

namespace gannet {
namespace {
// How long a worker spins for the next job before sleeping: about 50-100 us, longer than the gap
// between two kernels of one forward pass, far shorter than the gap between requests.
constexpr int kSpinIterations = 20000;
}  // namespace

int ThreadPool::HardwareThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : HardwareThreads();
  claimed_ = std::make_unique<std::atomic<uint64_t>[]>(static_cast<size_t>(n_threads_));
  for (int i = 0; i < n_threads_; ++i) claimed_[i].store(0, std::memory_order_relaxed);
  workers_.reserve(n_threads_ - 1);
  // Each worker starts from the generation current now, not when its thread first runs: a Run()
  // issued before a worker is scheduled must still be seen as new work by it.
  const uint64_t start = generation_.load(std::memory_order_relaxed);
  for (int i = 1; i < n_threads_; ++i)
    workers_.emplace_back([this, i, start] { WorkerLoop(i, start); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunImpl(JobFn fn, void* ctx) {
  if (n_threads_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  job_fn_ = fn;
  job_ctx_ = ctx;
  remaining_.store(n_threads_ - 1, std::memory_order_relaxed);
  uint64_t g;
  {
    // The generation bump publishes job_fn_/job_ctx_ (release) to workers that acquire it.
    std::lock_guard<std::mutex> lock(mu_);
    g = generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
  fn(ctx, 0, n_threads_);
  // Indexes no worker has started yet are run here: a descheduled or sleeping worker then costs
  // nothing (jobs that split work dynamically find nothing left; static splits get done here).
  for (int i = 1; i < n_threads_; ++i) {
    if (Claim(i, g)) {
      fn(ctx, i, n_threads_);
      remaining_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
  // Spin briefly (the usual case: workers finish within microseconds of the caller), then
  // yield so an oversubscribed machine can run the workers we are waiting for.
  for (int spins = 0; remaining_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kSpinIterations / 4) {
      GANNET_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::WorkerLoop(int index, uint64_t seen) {
  for (;;) {
    int spins = 0;
    uint64_t g;
    while ((g = generation_.load(std::memory_order_acquire)) == seen && spins < kSpinIterations) {
      // Mostly pause; now and then yield, so that spinning never starves a thread that has work.
      if ((++spins & 255) == 0) {
        std::this_thread::yield();
      } else {
        GANNET_PAUSE();
      }
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1, std::memory_order_acq_rel);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      sleepers_.fetch_sub(1, std::memory_order_acq_rel);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    // A failed claim: the caller ran this index (this worker came late); the job may already be
    // over and job_fn_ another one's, so it is read only after a successful claim, which means
    // the caller is still waiting for this index and job_fn_ is generation g's.
    if (!Claim(index, g)) continue;
    job_fn_(job_ctx_, index, n_threads_);
    remaining_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

bool ThreadPool::Claim(int index, uint64_t g) {
  uint64_t prev = claimed_[index].load(std::memory_order_acquire);
  while (prev < g) {
    if (claimed_[index].compare_exchange_weak(prev, g, std::memory_order_acq_rel)) return true;
  }
  return false;
}

}  // namespace gannet
