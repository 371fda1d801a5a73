// Shared fixture of the HTTP tests: an HttpServer on an ephemeral loopback port with a log
// collector, and a registry through which a test takes over writers its handler parked
// (asynchronous responses).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/http_server.h"
#include "test_client.h"

namespace gannet::http::testing {

using namespace std::chrono_literals;

// Writers parked by a handler, handed to the test thread in arrival order.
class WriterQueue {
 public:
  void Push(std::shared_ptr<ResponseWriter> w, HttpRequest req) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writers_.push_back(std::move(w));
      requests_.push_back(std::move(req));
    }
    cv_.notify_all();
  }
  // Waits until at least n writers arrived; false on timeout.
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return writers_.size() >= n; });
  }
  std::shared_ptr<ResponseWriter> At(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return writers_.at(i);
  }
  HttpRequest RequestAt(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.at(i);
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return writers_.size();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    writers_.clear();
    requests_.clear();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<ResponseWriter>> writers_;
  std::vector<HttpRequest> requests_;
};

class ServerFixture : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options, HttpHandler handler) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.request_logger = [this](const RequestLog& log) {
      std::lock_guard<std::mutex> lock(log_mu_);
      logs_.push_back(log);
    };
    server_ = std::make_unique<HttpServer>(std::move(options), std::move(handler));
    const Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_NE(server_->port(), 0);
  }

  // Handler that parks every writer in parked_ for the test to answer.
  HttpHandler ParkingHandler() {
    return [this](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
      parked_.Push(std::move(w), std::move(req));
    };
  }

  std::unique_ptr<TestClient> Connect() { return TestClient::Connect(server_->port()); }

  std::vector<RequestLog> Logs() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return logs_;
  }
  // Waits until the log has n lines (the loop writes them when responses complete).
  bool WaitForLogs(size_t n, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Logs().size() >= n) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  void TearDown() override {
    parked_.Clear();
    if (server_) server_->Shutdown(1s);
  }

  std::unique_ptr<HttpServer> server_;
  WriterQueue parked_;
  std::mutex log_mu_;
  std::vector<RequestLog> logs_;
};

inline std::string Get(const std::string& path, const std::string& extra_headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers + "\r\n";
}

inline std::string Post(const std::string& path, const std::string& body,
                        const std::string& extra_headers = "") {
  return "POST " + path +
         " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

}  // namespace gannet::http::testing
