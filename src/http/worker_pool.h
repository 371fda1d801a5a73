// HttpServer's worker pool (internal to http_server.cc): runs handlers on their own threads so
// that one that blocks never stalls the event loop; Stop waits a bounded time for handlers and
// detaches the threads of those still running.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "http/http_server.h"

namespace gannet::http {

class HttpServer::WorkerPool {
 public:
  WorkerPool(int n, HttpHandler handler) : state_(std::make_shared<State>()) {
    state_->handler = std::move(handler);
    for (int i = 0; i < n; ++i) threads_.emplace_back([state = state_] { Work(*state); });
  }
  // After Shutdown the threads are gone already; otherwise (a failed Start) none runs a handler.
  ~WorkerPool() { Stop(std::chrono::seconds(5)); }

  void Submit(HttpRequest request, std::shared_ptr<ResponseWriter> writer) {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->tasks.push_back(Task{std::move(request), std::move(writer)});
    }
    state_->cv.notify_one();
  }

  // Lets running handlers return, drops queued ones (their connections are closed by now), and
  // joins the threads. Threads whose handler has not returned within `wait` are detached (they
  // hold the pool's state and exit when their handler returns); returns how many.
  int Stop(std::chrono::milliseconds wait) {
    if (threads_.empty()) return 0;  // stopped before
    std::deque<Task> dropped;
    bool all_exited = false;
    {
      std::unique_lock<std::mutex> lock(state_->mu);
      state_->stop = true;
      dropped.swap(state_->tasks);
      state_->cv.notify_all();
      all_exited = state_->exited_cv.wait_for(
          lock, wait, [&] { return state_->exited == static_cast<int>(threads_.size()); });
    }
    int abandoned = 0;
    for (std::thread& t : threads_) {
      if (all_exited) {
        t.join();
      } else {
        t.detach();
      }
    }
    if (!all_exited) {
      std::lock_guard<std::mutex> lock(state_->mu);
      abandoned = static_cast<int>(threads_.size()) - state_->exited;
    }
    threads_.clear();
    return abandoned;
  }

 private:
  struct Task {
    HttpRequest request;
    std::shared_ptr<ResponseWriter> writer;
  };
  // Shared with the threads, so a detached one still has a valid pool to return to.
  struct State {
    HttpHandler handler;
    std::mutex mu;
    std::condition_variable cv;
    std::condition_variable exited_cv;
    std::deque<Task> tasks;
    bool stop = false;
    int exited = 0;
  };

  static void Work(State& state) {
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(state.mu);
        state.cv.wait(lock, [&] { return state.stop || !state.tasks.empty(); });
        if (state.stop) {
          ++state.exited;
          state.exited_cv.notify_all();
          return;
        }
        task = std::move(state.tasks.front());
        state.tasks.pop_front();
      }
      try {
        state.handler(std::move(task.request), std::move(task.writer));
      } catch (const std::exception&) {
        // The writer's last reference is gone with the handler's frame: the client gets a 500.
      } catch (...) {
      }
    }
  }

  std::shared_ptr<State> state_;
  std::vector<std::thread> threads_;
};

}  // namespace gannet::http
