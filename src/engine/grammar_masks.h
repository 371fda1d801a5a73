// MaskPrefetcher: the token masks of a step's constrained samples, computed while its forward pass
// runs instead of after it.
//
// For a sample that is not verifying a draft, the grammar state that decides its next token's mask
// is its matcher's state when the step is scheduled: nothing changes it until the step's logits
// are sampled. So the engine hands every such (matcher, mask buffer) pair to Start() before the
// forward pass, a worker thread fills the masks during the pass, and each sampling job calls
// Ensure() before it masks its logits. A draft tree's first row is prefetched the same way; its
// later rows depend on the tokens sampled, so they are computed when sampled (not here).
//
// Work is claimed, never duplicated or lost: each task is taken exactly once, either by the worker
// (which then fills it and marks it done) or by the first Ensure() that finds it untaken (which
// fills it on its own thread). An Ensure() that finds the worker filling its task blocks on it
// (a futex wait, no spinning). The masks are the very bits MaskCache::FillNextTokenMask gives (it
// is what fills them), so outputs are identical with and without prefetching.
//
// Why it helps: the mask is on the step's critical path otherwise (forward pass, then mask, then
// sample). With a core to spare beside the forward pass's threads it becomes free; on a machine
// whose every core runs the forward pass it competes with it, and the worker takes nothing
// untaken once the pass has returned (the sampling jobs fill those on the runner's pool).
//
// Thread-safety: Start and Finish are called by one thread (the engine's step thread); Ensure may
// be called concurrently for different tasks (the sampling jobs). Between Start and Finish the
// caller must not touch a task's matcher or mask except through Ensure, and must keep them, and
// their MaskCache, alive: Finish returns only once the worker no longer touches any of them
// (tasks not yet taken are dropped), so call it before anything a task points to is destroyed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "grammar/mask_cache.h"
#include "grammar/matcher.h"

namespace gannet::engine {

class MaskPrefetcher {
 public:
  struct Task {
    const grammar::MaskCache* cache = nullptr;
    const grammar::Matcher* matcher = nullptr;
    std::span<uint32_t> mask;  // REQUIRES: at least cache->vocab().mask_words() words
  };

  // enabled = false: no thread; Start keeps the tasks and Ensure fills each on its caller's thread
  // (the computation of a step without prefetching, for A/B comparison).
  explicit MaskPrefetcher(bool enabled);
  ~MaskPrefetcher();  // joins the worker (after Finish)
  MaskPrefetcher(const MaskPrefetcher&) = delete;
  MaskPrefetcher& operator=(const MaskPrefetcher&) = delete;

  bool enabled() const { return enabled_; }

  // Begins filling `tasks` (copied; task i is Ensure(i)'s). REQUIRES: the previous batch was
  // Finish()ed.
  void Start(std::span<const Task> tasks);
  // Returns once task i's mask is filled (by the worker, or here when the worker has not taken it):
  // MaskCache::FillNextTokenMask's answer, false when the mask ran past its work budget.
  // REQUIRES: i < the size of the batch given to Start; called at most once per task.
  bool Ensure(size_t i);
  // Drops the tasks not taken yet and waits for the one the worker may be filling. After it, the
  // batch's matchers and masks belong to the caller again. Idempotent.
  void Finish();

 private:
  // A task's life: kPending, then kWorker -> kDone (the worker filled it) or kCaller (Ensure or
  // Finish took it).
  enum State : uint32_t { kPending = 0, kWorker = 1, kDone = 2, kCaller = 3 };
  struct Slot {
    Task task;
    std::atomic<uint32_t> state{kPending};
    bool complete = false;  // the worker's fill was within budget (valid once kDone)
  };
  static bool Fill(const Task& t);
  void WorkerLoop();

  const bool enabled_;
  std::unique_ptr<Slot[]> slots_;
  size_t n_slots_ = 0, capacity_ = 0;

  std::mutex mu_;  // guards the four below (the worker's wake-ups and Finish's wait)
  std::condition_variable cv_;
  uint64_t generation_ = 0;  // bumped by each Start
  uint64_t finished_ = 0;    // the last generation Finish()ed: the worker skips it if not started
  bool busy_ = false;        // the worker is walking a batch's slots
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace gannet::engine
