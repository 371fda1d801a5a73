// Streamed (SSE) responses: incremental delivery, hundreds of concurrent streams, disconnects,
// slow readers and backpressure, graceful shutdown.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <thread>

#include "http/http_server.h"
#include "http/sse.h"
#include "http_test_util.h"

namespace gannet::http::testing {
namespace {

class HttpStreamingTest : public ServerFixture {};

std::string StreamRequest(const std::string& path = "/v1/chat/completions") {
  return Post(path, "{\"stream\":true}", "Accept: text/event-stream\r\n");
}

TEST_F(HttpStreamingTest, EventsArriveOneByOne) {
  StartServer({}, ParkingHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(StreamRequest()));
  ASSERT_TRUE(parked_.WaitFor(1));
  auto w = parked_.At(0);
  ASSERT_TRUE(w->StartStream(200, SseHeaders()).ok());
  auto head = c->ReadHead();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-type"), "text/event-stream; charset=utf-8");
  EXPECT_EQ(head->Header("transfer-encoding"), "chunked");
  EXPECT_EQ(head->Header("cache-control"), "no-cache");
  // Each event is readable before the next one is written: nothing waits for the end.
  for (int i = 0; i < 5; ++i) {
    const std::string event = SseEvent("{\"token\":" + std::to_string(i) + "}");
    EXPECT_EQ(w->Write(event), WriteResult::kOk);
    auto chunk = c->ReadChunk();
    ASSERT_TRUE(chunk) << i;
    EXPECT_EQ(*chunk, event);
  }
  EXPECT_EQ(w->Write(SseDone()), WriteResult::kOk);
  ASSERT_TRUE(w->End().ok());
  EXPECT_EQ(w->End().code(), StatusCode::kInvalidArgument);
  auto last = c->ReadChunk();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, "data: [DONE]\n\n");
  auto end = c->ReadChunk();
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->empty());
  // The connection is reusable after a stream.
  w.reset();
  parked_.Clear();
  ASSERT_TRUE(c->Send(Get("/next")));
  ASSERT_TRUE(parked_.WaitFor(1));
  ASSERT_TRUE(parked_.At(0)->Send(200, "text/plain", "next").ok());
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "next");
  ASSERT_TRUE(WaitForLogs(2));
  EXPECT_TRUE(Logs()[0].completed);
  EXPECT_EQ(Logs()[0].status, 200);
}

TEST_F(HttpStreamingTest, AnswerFromAnotherThreadAfterTheHandlerReturned) {
  std::vector<std::thread> producers;
  std::mutex mu;
  StartServer({.handler_threads = 1}, [&](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
    std::lock_guard<std::mutex> lock(mu);
    producers.emplace_back([w] {
      std::this_thread::sleep_for(20ms);
      if (!w->StartStream(200, SseHeaders()).ok()) return;
      for (int i = 0; i < 3; ++i) w->Write(SseEvent(std::to_string(i)));
      w->End();
    });
  });
  // More streams than handler threads: the handler returns at once, so none waits for another.
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(Connect());
    ASSERT_TRUE(clients.back());
    ASSERT_TRUE(clients.back()->Send(StreamRequest()));
  }
  for (auto& c : clients) {
    auto r = c->ReadResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  }
  std::lock_guard<std::mutex> lock(mu);
  for (std::thread& t : producers) t.join();
}

TEST_F(HttpStreamingTest, Http10StreamIsFramedByClose) {
  StartServer({}, ParkingHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("GET /events HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  ASSERT_TRUE(parked_.WaitFor(1));
  auto w = parked_.At(0);
  ASSERT_TRUE(w->StartStream(200, SseHeaders()).ok());
  w->Write(SseEvent("a"));
  w->Write(SseEvent("b"));
  ASSERT_TRUE(w->End().ok());
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->Has("transfer-encoding"));
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_EQ(r->body, "data: a\n\ndata: b\n\n");
}

// 600 clients connect at once and each holds an open event stream; all are served.
TEST_F(HttpStreamingTest, SixHundredConcurrentStreams) {
  constexpr int kStreams = 600;
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  // Client and server ends of every connection live in this process.
  if (lim.rlim_cur < 2 * kStreams + 200)
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max << " too low";

  StartServer({.handler_threads = 2}, ParkingHandler());
  ASSERT_GE(server_->max_connections(), kStreams);
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(Connect());
    ASSERT_TRUE(clients.back()) << "connection " << i << " refused";
  }
  for (int i = 0; i < kStreams; ++i)
    ASSERT_TRUE(clients[i]->Send(StreamRequest("/s" + std::to_string(i))));
  ASSERT_TRUE(parked_.WaitFor(kStreams, 30s))
      << parked_.size() << " of " << kStreams << " requests arrived";
  EXPECT_EQ(server_->open_connections(), kStreams);

  // Every stream is open at once: headers and a first event for all, then the rest.
  for (int i = 0; i < kStreams; ++i) {
    auto w = parked_.At(i);
    ASSERT_TRUE(w->StartStream(200, SseHeaders()).ok());
    ASSERT_EQ(w->Write(SseEvent(parked_.RequestAt(i).path)), WriteResult::kOk);
  }
  for (int i = 0; i < kStreams; ++i) {
    auto head = clients[i]->ReadHead();
    ASSERT_TRUE(head) << i;
    ASSERT_EQ(head->status, 200);
    auto chunk = clients[i]->ReadChunk();
    ASSERT_TRUE(chunk) << i;
    EXPECT_EQ(*chunk, "data: /s" + std::to_string(i) + "\n\n");
  }
  for (int i = 0; i < kStreams; ++i) {
    auto w = parked_.At(i);
    ASSERT_EQ(w->Write(SseDone()), WriteResult::kOk);
    ASSERT_TRUE(w->End().ok());
  }
  for (int i = 0; i < kStreams; ++i) {
    auto chunk = clients[i]->ReadChunk();
    ASSERT_TRUE(chunk) << i;
    EXPECT_EQ(*chunk, SseDone());
    auto end = clients[i]->ReadChunk();
    ASSERT_TRUE(end && end->empty()) << i;
  }
  ASSERT_TRUE(WaitForLogs(kStreams));
  for (const RequestLog& log : Logs()) EXPECT_TRUE(log.completed);
}

TEST_F(HttpStreamingTest, ClientDisconnectFiresOnCloseWithin100ms) {
  StartServer({}, ParkingHandler());
  for (bool reset : {false, true}) {
    parked_.Clear();
    auto c = Connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->Send(StreamRequest()));
    ASSERT_TRUE(parked_.WaitFor(1));
    auto w = parked_.At(0);
    std::mutex mu;
    std::condition_variable cv;
    bool fired = false;
    int calls = 0;
    w->SetOnClose([&] {
      std::lock_guard<std::mutex> lock(mu);
      fired = true;
      ++calls;
      cv.notify_all();
    });
    ASSERT_TRUE(w->StartStream(200, SseHeaders()).ok());
    ASSERT_EQ(w->Write(SseEvent("first")), WriteResult::kOk);
    ASSERT_TRUE(c->ReadHead());
    ASSERT_TRUE(c->ReadChunk());
    EXPECT_FALSE(w->IsClosed());

    if (reset) {
      linger off{.l_onoff = 1, .l_linger = 0};  // close with RST instead of FIN
      setsockopt(c->fd(), SOL_SOCKET, SO_LINGER, &off, sizeof(off));
    }
    const auto t0 = std::chrono::steady_clock::now();
    c->Close();
    {
      std::unique_lock<std::mutex> lock(mu);
      ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return fired; })) << "on-close never ran";
    }
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(elapsed, 100ms)
        << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
    EXPECT_TRUE(w->IsClosed());
    EXPECT_EQ(w->Write(SseEvent("late")), WriteResult::kClosed);
    EXPECT_EQ(w->End().code(), StatusCode::kIoError);
    // A callback set after the close runs at once.
    bool late = false;
    w->SetOnClose([&] { late = true; });
    EXPECT_TRUE(late);
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(calls, 1);
  }
  ASSERT_TRUE(WaitForLogs(2));
  EXPECT_FALSE(Logs()[0].completed);
  EXPECT_NE(FormatRequestLog(Logs()[0]).find("aborted"), std::string::npos);
}

TEST_F(HttpStreamingTest, SlowReaderGetsBackpressureAndDoesNotBlockOthers) {
  StartServer({.write_soft_limit = 64 * 1024, .write_hard_limit = 1 << 20}, ParkingHandler());
  auto slow = Connect();
  ASSERT_TRUE(slow);
  ASSERT_TRUE(slow->Send(StreamRequest("/slow")));
  ASSERT_TRUE(parked_.WaitFor(1));
  auto w = parked_.At(0);
  std::atomic<bool> closed_cb{false};
  w->SetOnClose([&] { closed_cb = true; });
  ASSERT_TRUE(w->StartStream(200, SseHeaders()).ok());

  // Write while the server says it can take more; the client reads nothing. The loop first fills
  // the kernel's socket buffers, then the queue stays above the soft limit.
  const std::string event = SseEvent(std::string(1000, 'x'));
  WriteResult result = WriteResult::kOk;
  size_t written = 0;
  while (written < (64u << 20)) {
    result = w->Write(event);
    written += event.size();
    if (result == WriteResult::kBackpressure && !w->WaitWritable(200ms)) break;
  }
  ASSERT_EQ(result, WriteResult::kBackpressure) << "after " << written << " bytes";
  EXPECT_GT(w->queued_bytes(), 64u * 1024);
  EXPECT_FALSE(w->WaitWritable(50ms));

  // Meanwhile another client is served at once.
  auto fast = Connect();
  ASSERT_TRUE(fast);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(fast->Send(Get("/fast")));
  ASSERT_TRUE(parked_.WaitFor(2));
  ASSERT_TRUE(parked_.At(1)->Send(200, "text/plain", "quick").ok());
  auto r = fast->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "quick");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);

  // The slow client reads a little: the queue drains and the writer may go on.
  std::thread reader([&] {
    char buf[65536];
    size_t got = 0;
    while (got < written / 2) {
      const ssize_t n = recv(slow->fd(), buf, sizeof(buf), 0);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
  });
  EXPECT_TRUE(w->WaitWritable(10s));
  reader.join();

  // Past the hard limit the connection is dropped and the writer learns it.
  while (result != WriteResult::kClosed && written < (256u << 20)) {
    result = w->Write(event);
    written += event.size();
  }
  EXPECT_EQ(result, WriteResult::kClosed);
  EXPECT_TRUE(w->IsClosed());
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!closed_cb && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  EXPECT_TRUE(closed_cb);
  EXPECT_TRUE(slow->WaitForClose(5s));
}

TEST_F(HttpStreamingTest, ClientTakingNoBytesIsDroppedAfterSendTimeout) {
  StartServer({.send_timeout = 300ms, .write_soft_limit = 64 * 1024, .write_hard_limit = 64 << 20},
              ParkingHandler());
  auto stalled = Connect();
  ASSERT_TRUE(stalled);
  ASSERT_TRUE(stalled->Send(StreamRequest()));
  ASSERT_TRUE(parked_.WaitFor(1));
  auto w = parked_.At(0);
  std::atomic<bool> closed_cb{false};
  w->SetOnClose([&] { closed_cb = true; });
  ASSERT_TRUE(w->StartStream(200, SseHeaders()).ok());
  // Fill the kernel buffers and the queue; the client never reads.
  const std::string event = SseEvent(std::string(4000, 'y'));
  size_t written = 0;
  while (written < (48u << 20) && !w->IsClosed()) {
    if (w->Write(event) == WriteResult::kBackpressure && !w->WaitWritable(100ms)) break;
    written += event.size();
  }
  ASSERT_FALSE(w->IsClosed());
  const auto t0 = std::chrono::steady_clock::now();
  while (!closed_cb && std::chrono::steady_clock::now() - t0 < 5s) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(closed_cb);
  EXPECT_TRUE(w->IsClosed());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(HttpStreamingTest, AbandonedStreamIsCutOffNotCompleted) {
  StartServer({}, ParkingHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(StreamRequest()));
  ASSERT_TRUE(parked_.WaitFor(1));
  {
    auto w = parked_.At(0);
    ASSERT_TRUE(w->StartStream(200, SseHeaders()).ok());
    w->Write(SseEvent("partial"));
    parked_.Clear();
  }  // last reference gone without End()
  ASSERT_TRUE(c->ReadHead());
  auto chunk = c->ReadChunk();
  ASSERT_TRUE(chunk);
  EXPECT_EQ(*chunk, SseEvent("partial"));
  EXPECT_FALSE(c->ReadChunk()) << "a truncated stream must not look complete";
}

TEST_F(HttpStreamingTest, ShutdownFinishesInFlightStreamsAndRefusesNewConnections) {
  StartServer({}, ParkingHandler());
  constexpr int kStreams = 3;
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(Connect());
    ASSERT_TRUE(clients.back());
    ASSERT_TRUE(clients.back()->Send(StreamRequest()));
  }
  auto idle = Connect();  // keep-alive, nothing in flight: closed at once by the drain
  ASSERT_TRUE(idle);
  ASSERT_TRUE(parked_.WaitFor(kStreams));
  for (int i = 0; i < kStreams; ++i) {
    auto w = parked_.At(i);
    ASSERT_TRUE(w->StartStream(200, SseHeaders()).ok());
    w->Write(SseEvent("before"));
  }
  const uint16_t port = server_->port();
  const auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] { server_->Shutdown(5s); });

  EXPECT_TRUE(idle->WaitForClose(2s));
  // The listening socket is closed: new connections are refused.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    refused = TestClient::Connect(port) == nullptr;
    if (!refused) std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(refused);

  // In-flight streams go on and complete.
  for (int i = 0; i < kStreams; ++i) {
    auto w = parked_.At(i);
    EXPECT_FALSE(w->IsClosed());
    EXPECT_EQ(w->Write(SseEvent("during")), WriteResult::kOk);
    EXPECT_EQ(w->Write(SseDone()), WriteResult::kOk);
    EXPECT_TRUE(w->End().ok());
  }
  for (int i = 0; i < kStreams; ++i) {
    auto r = clients[i]->ReadResponse();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, SseEvent("before") + SseEvent("during") + SseDone());
    EXPECT_TRUE(clients[i]->WaitForClose(3s));
  }
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s) << "Shutdown waited past the last stream";
  for (const RequestLog& log : Logs()) EXPECT_TRUE(log.completed);
}

TEST_F(HttpStreamingTest, ShutdownClosesStreamsLeftAtTheDeadline) {
  std::atomic<int> handler_returned{0};
  // A handler that blocks until its writer closes, as a generation loop would.
  StartServer({.handler_threads = 2}, [&](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
    if (!w->StartStream(200, SseHeaders()).ok()) return;
    while (w->Write(SseComment("tick")) != WriteResult::kClosed) std::this_thread::sleep_for(10ms);
    handler_returned.fetch_add(1);
  });
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Send(StreamRequest()));
  ASSERT_TRUE(b->Send(StreamRequest()));
  ASSERT_TRUE(a->ReadHead() && b->ReadHead());
  const auto t0 = std::chrono::steady_clock::now();
  server_->Shutdown(300ms);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_EQ(handler_returned.load(), 2);
  EXPECT_TRUE(a->WaitForClose(1s));
  EXPECT_TRUE(b->WaitForClose(1s));
  server_->Shutdown(0ms);  // idempotent
}

}  // namespace
}  // namespace gannet::http::testing
