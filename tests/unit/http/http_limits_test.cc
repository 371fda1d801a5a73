// HttpServer against hostile clients over loopback: slow headers and bodies (408 within the
// deadline), per-connection request and lifetime limits, the server-wide memory budget, and a
// Shutdown that returns when a handler never does. Every deadline is configured short.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "http/http_server.h"
#include "http_test_util.h"

namespace gannet::http::testing {
namespace {

using Clock = std::chrono::steady_clock;

HttpHandler EchoBodyHandler() {
  return [](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
    (void)w->Send(200, "text/plain", req.path + " " + std::to_string(req.body.size()));
  };
}

// Sends `data` one byte every `gap` until the server answers or closes; returns the response.
std::optional<ClientResponse> Drip(TestClient& c, std::string_view data,
                                   std::chrono::milliseconds gap) {
  for (char byte : data) {
    if (!c.Send(std::string_view(&byte, 1))) break;
    pollfd p{c.fd(), POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(gap.count())) > 0) break;  // the server spoke or closed
  }
  return c.ReadResponse();
}

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

class HttpLimitsTest : public ServerFixture {};

TEST_F(HttpLimitsTest, HeadersDrippedForeverGet408AtTheHeaderDeadline) {
  // Every byte arrives well within the idle timeout: only the whole-header deadline catches it.
  StartServer({.idle_timeout = 10s, .header_timeout = 500ms}, EchoBodyHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  const auto t0 = Clock::now();
  std::string endless = "GET / HTTP/1.1\r\nHost: localhost\r\n";
  for (int i = 0; i < 200; ++i) endless += "X-Pad-" + std::to_string(i) + ": v\r\n";
  auto r = Drip(*c, endless, 50ms);
  const auto elapsed = Clock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_NE(r->body.find("header timeout"), std::string::npos) << r->body;
  EXPECT_GE(elapsed, 450ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_TRUE(c->WaitForClose(3s));
}

TEST_F(HttpLimitsTest, BodyDrippedBelowTheMinimumRateGets408) {
  StartServer(
      {.idle_timeout = 10s, .header_timeout = 10s, .min_body_rate = 1000, .body_rate_grace = 300ms},
      EchoBodyHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"));
  const auto t0 = Clock::now();
  auto r = Drip(*c, std::string(100000, 'x'), 50ms);  // 20 bytes/s
  const auto elapsed = Clock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_NE(r->body.find("minimum body rate"), std::string::npos) << r->body;
  EXPECT_LT(elapsed, 2s);

  // A body that arrives at a good rate, even in pieces, is served.
  auto ok = Connect();
  ASSERT_TRUE(ok);
  ASSERT_TRUE(ok->Send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000\r\n\r\n"));
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(150ms);
    ASSERT_TRUE(ok->Send(std::string(1000, 'y')));
  }
  r = ok->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "/up 4000");
}

TEST_F(HttpLimitsTest, SlowClientsDoNotDelayOthers) {
  StartServer({.handler_threads = 1}, EchoBodyHandler());
  auto slow_head = Connect();
  auto slow_body = Connect();
  ASSERT_TRUE(slow_head && slow_body);
  ASSERT_TRUE(slow_head->Send("GET /health HTTP/1.1\r\nHost: loc"));
  ASSERT_TRUE(
      slow_body->Send("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\na"));
  auto quick = Connect();
  ASSERT_TRUE(quick);
  const auto t0 = Clock::now();
  ASSERT_TRUE(quick->Send(Get("/health")));
  auto r = quick->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(Clock::now() - t0, 500ms);
}

TEST_F(HttpLimitsTest, PriorityPathsNeverWaitBehindBusyHandlers) {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  StartServer({.handler_threads = 1, .priority_paths = {"/health"}},
              [&](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
                if (req.path == "/slow") {
                  std::unique_lock<std::mutex> lock(mu);
                  cv.wait(lock, [&] { return open; });
                }
                (void)w->Send(200, "text/plain", req.path);
              });
  auto slow = Connect();
  ASSERT_TRUE(slow);
  ASSERT_TRUE(slow->Send(Get("/slow")));  // holds the only ordinary worker
  std::this_thread::sleep_for(50ms);
  auto other = Connect();
  ASSERT_TRUE(other);
  ASSERT_TRUE(other->Send(Get("/other")));
  auto health = Connect();
  ASSERT_TRUE(health);
  const auto t0 = Clock::now();
  ASSERT_TRUE(health->Send(Get("/health")));
  auto r = health->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "/health");
  EXPECT_LT(Clock::now() - t0, 500ms);
  // An ordinary request does wait for the busy worker.
  pollfd p{other->fd(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 200), 0);
  {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
  }
  cv.notify_all();
  r = other->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "/other");
  ASSERT_TRUE(slow->ReadResponse());
}

TEST_F(HttpLimitsTest, RequestCountPerConnectionIsLimited) {
  StartServer({.max_requests_per_connection = 3}, EchoBodyHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(c->Send(Get("/" + std::to_string(i))));
    auto r = c->ReadResponse();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->Header("connection"), i == 3 ? "close" : "") << i;
  }
  EXPECT_TRUE(c->WaitForClose(3s));
}

TEST_F(HttpLimitsTest, ConnectionLifetimeIsLimited) {
  StartServer({.idle_timeout = 10s, .max_connection_lifetime = 300ms}, ParkingHandler());
  // A request handed over past the connection's lifetime is its last, even when pipelined
  // behind a slow one: its response says "Connection: close".
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/slow") + Get("/late")));
  ASSERT_TRUE(parked_.WaitFor(1));
  std::this_thread::sleep_for(400ms);
  ASSERT_TRUE(parked_.At(0)->Send(200, "text/plain", "slow").ok());
  ASSERT_TRUE(parked_.WaitFor(2));
  ASSERT_TRUE(parked_.At(1)->Send(200, "text/plain", "late").ok());
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("connection"), "");
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "late");
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(c->WaitForClose(3s));

  // An idle keep-alive connection is closed at its lifetime although the idle timeout is far.
  auto idle = Connect();
  ASSERT_TRUE(idle);
  ASSERT_TRUE(idle->Send(Get("/quick")));
  ASSERT_TRUE(parked_.WaitFor(3));
  ASSERT_TRUE(parked_.At(2)->Send(200, "text/plain", "quick").ok());
  r = idle->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("connection"), "");
  const auto t0 = Clock::now();
  EXPECT_TRUE(idle->WaitForClose(3s));
  EXPECT_LT(Clock::now() - t0, 1s);
}

TEST_F(HttpLimitsTest, RequestBodiesShareOneMemoryBudget) {
  StartServer({.limits = {.max_body_bytes = 1 << 20}, .memory_budget = 100 * 1024},
              ParkingHandler());
  // One body of 64 KiB fits and is held until its response completes ...
  auto a = Connect();
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Send(Post("/a", std::string(64 * 1024, 'a'))));
  ASSERT_TRUE(parked_.WaitFor(1));
  EXPECT_EQ(server_->buffered_bytes(), 64u * 1024);
  // ... so a second one of 64 KiB, although under max_body_bytes, passes the budget: 503.
  auto b = Connect();
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->Send(Post("/b", std::string(64 * 1024, 'b'))));
  auto r = b->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("memory budget"), std::string::npos) << r->body;
  EXPECT_EQ(r->Header("connection"), "close");
  // Once the first response is out, the budget is free again.
  ASSERT_TRUE(parked_.At(0)->Send(200, "text/plain", "a").ok());
  ASSERT_TRUE(a->ReadResponse());
  EXPECT_TRUE(WaitUntil([&] { return server_->buffered_bytes() == 0; }));
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Post("/c", std::string(64 * 1024, 'c'))));
  ASSERT_TRUE(parked_.WaitFor(2));
  EXPECT_EQ(parked_.RequestAt(1).body.size(), 64u * 1024);
  ASSERT_TRUE(parked_.At(1)->Send(200, "text/plain", "c").ok());
  ASSERT_TRUE(c->ReadResponse());
}

TEST_F(HttpLimitsTest, QueuedResponsesShareOneMemoryBudget) {
  // The per-response hard limit is far; the server-wide budget stops a client that reads nothing.
  StartServer(
      {.write_soft_limit = 32 << 20, .write_hard_limit = 64 << 20, .memory_budget = 1 << 20},
      ParkingHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/stream")));
  ASSERT_TRUE(parked_.WaitFor(1));
  std::shared_ptr<ResponseWriter> w = parked_.At(0);
  ASSERT_TRUE(w->StartStream(200, {{"Content-Type", "text/plain"}}).ok());
  const std::string piece(64 * 1024, 'z');
  size_t written = 0;
  bool saw_backpressure = false;
  WriteResult result = WriteResult::kOk;
  while (written < (64u << 20)) {
    result = w->Write(piece);
    if (result == WriteResult::kClosed) break;
    saw_backpressure |= result == WriteResult::kBackpressure;
    written += piece.size();
    if (w->queued_bytes() < piece.size()) std::this_thread::sleep_for(1ms);  // let the loop flush
  }
  EXPECT_EQ(result, WriteResult::kClosed);
  EXPECT_TRUE(saw_backpressure);
  EXPECT_LT(written, 32u << 20);  // socket buffers plus the 1 MiB budget, far below the hard limit
  EXPECT_TRUE(w->IsClosed());
  EXPECT_TRUE(WaitUntil([&] { return server_->buffered_bytes() == 0; }));

  // A whole response larger than the budget is refused and its connection dropped.
  auto d = Connect();
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->Send(Get("/big")));
  ASSERT_TRUE(parked_.WaitFor(2));
  const Status st = parked_.At(1)->Send(200, "text/plain", std::string(2 << 20, 'b'));
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_FALSE(d->ReadResponse());
  EXPECT_EQ(server_->buffered_bytes(), 0u);
}

TEST_F(HttpLimitsTest, ShutdownReturnsWhenAHandlerIsStuck) {
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    bool returned = false;
  };
  auto gate = std::make_shared<Gate>();
  StartServer({.handler_exit_timeout = 300ms},
              [gate](HttpRequest, std::shared_ptr<ResponseWriter>) {
                // Ignores its writer being closed: only the test's gate lets it go.
                std::unique_lock<std::mutex> lock(gate->mu);
                gate->cv.wait(lock, [&] { return gate->open; });
                gate->returned = true;
                gate->cv.notify_all();
              });
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/stuck")));
  std::this_thread::sleep_for(100ms);
  const auto t0 = Clock::now();
  server_->Shutdown(200ms);
  const auto elapsed = Clock::now() - t0;
  EXPECT_LT(elapsed, 2s);
  EXPECT_GE(elapsed, 450ms);  // the grace, then the handler exit timeout
  EXPECT_EQ(server_->abandoned_handlers(), 1);
  EXPECT_TRUE(c->WaitForClose(1s));
  server_.reset();  // the abandoned thread still holds the pool's state
  std::unique_lock<std::mutex> lock(gate->mu);
  gate->open = true;
  gate->cv.notify_all();
  EXPECT_TRUE(gate->cv.wait_for(lock, 5s, [&] { return gate->returned; }));
}

TEST_F(HttpLimitsTest, AddHeaderGoesOutWithTheResponse) {
  StartServer({}, [](HttpRequest, std::shared_ptr<ResponseWriter> w) {
    EXPECT_TRUE(w->AddHeader("Access-Control-Allow-Origin", "http://a.example").ok());
    EXPECT_EQ(w->AddHeader("Content-Length", "1").code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(w->AddHeader("X-Bad", "a\r\nb").code(), StatusCode::kInvalidArgument);
    ASSERT_TRUE(w->Send(200, "text/plain", "ok").ok());
    EXPECT_EQ(w->AddHeader("X-Late", "1").code(), StatusCode::kInvalidArgument);
  });
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/")));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("access-control-allow-origin"), "http://a.example");
  EXPECT_FALSE(r->Has("x-late"));
}

}  // namespace
}  // namespace gannet::http::testing
