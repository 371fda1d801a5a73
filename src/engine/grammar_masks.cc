#include "engine/grammar_masks.h"

#include <algorithm>

#include "base/status.h"

namespace gannet::engine {

MaskPrefetcher::MaskPrefetcher(bool enabled) : enabled_(enabled) {
  if (enabled_) worker_ = std::thread([this] { WorkerLoop(); });
}

MaskPrefetcher::~MaskPrefetcher() {
  Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

bool MaskPrefetcher::Fill(const Task& t) { return t.cache->FillNextTokenMask(*t.matcher, t.mask); }

void MaskPrefetcher::Start(std::span<const Task> tasks) {
  // The worker is idle here (Finish ran), so the slots may be replaced.
  if (tasks.size() > capacity_) {
    capacity_ = std::max(tasks.size(), 2 * capacity_);
    slots_ = std::make_unique<Slot[]>(capacity_);
  }
  n_slots_ = tasks.size();
  for (size_t i = 0; i < n_slots_; ++i) {
    slots_[i].task = tasks[i];
    slots_[i].state.store(kPending, std::memory_order_relaxed);
  }
  if (!enabled_ || n_slots_ == 0) return;
  {
    // The mutex publishes the slots to the worker.
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
  }
  cv_.notify_all();
}

bool MaskPrefetcher::Ensure(size_t i) {
  GANNET_CHECK(i < n_slots_);
  std::atomic<uint32_t>& state = slots_[i].state;
  uint32_t s = kPending;
  if (state.compare_exchange_strong(s, kCaller, std::memory_order_acq_rel)) {
    return Fill(slots_[i].task);
  }
  // Taken by the worker (kWorker, then kDone), never by another caller (one Ensure per task).
  while (s == kWorker) {
    state.wait(kWorker, std::memory_order_acquire);
    s = state.load(std::memory_order_acquire);
  }
  GANNET_CHECK(s == kDone);
  return slots_[i].complete;  // written before kDone was stored (release), read after (acquire)
}

void MaskPrefetcher::Finish() {
  for (size_t i = 0; i < n_slots_; ++i) {
    uint32_t s = kPending;
    slots_[i].state.compare_exchange_strong(s, kCaller, std::memory_order_acq_rel);
  }
  if (!enabled_) {
    n_slots_ = 0;
    return;
  }
  std::unique_lock<std::mutex> lock(mu_);
  finished_ = generation_;  // a worker that has not woken for it yet skips it
  cv_.wait(lock, [&] { return !busy_; });
  n_slots_ = 0;  // under the mutex: the worker reads it there when it wakes
}

void MaskPrefetcher::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    Slot* slots = nullptr;
    size_t n = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || (generation_ != seen && generation_ != finished_); });
      if (stop_) return;
      seen = generation_;
      slots = slots_.get();
      n = n_slots_;
      busy_ = true;
    }
    // In order: the sampling jobs Ensure() in the same order, so the worker and the jobs meet
    // rather than wait on each other.
    for (size_t i = 0; i < n; ++i) {
      uint32_t s = kPending;
      if (!slots[i].state.compare_exchange_strong(s, kWorker, std::memory_order_acq_rel)) continue;
      slots[i].complete = Fill(slots[i].task);
      slots[i].state.store(kDone, std::memory_order_release);
      slots[i].state.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
    }
    cv_.notify_all();
  }
}

}  // namespace gannet::engine
