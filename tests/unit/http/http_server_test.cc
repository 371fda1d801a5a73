// Request/response behaviour of HttpServer over real loopback sockets: framing, keep-alive,
// pipelining, errors the loop answers itself, timeouts and limits.
#include "http/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "http_test_util.h"

namespace gannet::http::testing {
namespace {

// Answers "<method> <path>?<query> <body>" and echoes one request header.
HttpHandler EchoHandler() {
  return [](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
    std::string text = req.method + " " + req.path;
    if (!req.query.empty()) text += "?" + req.query;
    text += " " + req.body;
    HttpResponse resp{.status = 200, .headers = {{"Content-Type", "text/plain"}}, .body = text};
    if (const std::string* v = req.headers.Get("x-echo")) resp.headers.emplace_back("X-Echo", *v);
    const Status st = w->Send(std::move(resp));
    EXPECT_TRUE(st.ok()) << st.ToString();
  };
}

class HttpServerTest : public ServerFixture {};

TEST_F(HttpServerTest, GetAndPostRoundTrip) {
  StartServer({}, EchoHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/hello?x=1", "X-Echo: abc\r\n")));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /hello?x=1 ");
  EXPECT_EQ(r->Header("content-length"), "15");
  EXPECT_EQ(r->Header("x-echo"), "abc");
  EXPECT_EQ(r->Header("content-type"), "text/plain");
  EXPECT_TRUE(r->Has("date"));
  EXPECT_FALSE(r->Has("connection"));

  const std::string body = "{\"model\":\"m\",\"messages\":[]}";
  ASSERT_TRUE(c->Send(Post("/v1/chat/completions", body)));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /v1/chat/completions " + body);

  // A chunked request body arrives de-chunked.
  ASSERT_TRUE(
      c->Send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
              "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /c abcde");

  ASSERT_TRUE(WaitForLogs(3));
  const std::vector<RequestLog> logs = Logs();
  EXPECT_EQ(logs[0].method, "GET");
  EXPECT_EQ(logs[0].path, "/hello");
  EXPECT_EQ(logs[0].status, 200);
  EXPECT_TRUE(logs[0].completed);
  EXPECT_GT(logs[0].bytes, 15u);  // headers + body
  EXPECT_EQ(logs[1].path, "/v1/chat/completions");
  const std::string line = FormatRequestLog(logs[1]);
  EXPECT_EQ(line.rfind("POST /v1/chat/completions 200 ", 0), 0u) << line;
  EXPECT_NE(line.find("B "), std::string::npos) << line;
  EXPECT_NE(line.find("ms"), std::string::npos) << line;
}

TEST_F(HttpServerTest, KeepAliveReusesOneConnection) {
  StartServer({}, EchoHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c->Send(Get("/r" + std::to_string(i))));
    auto r = c->ReadResponse();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "GET /r" + std::to_string(i) + " ");
  }
  EXPECT_EQ(server_->open_connections(), 1);

  // "Connection: close" is honoured: answered with the same header, then the server closes.
  ASSERT_TRUE(c->Send(Get("/last", "Connection: close\r\n")));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(c->WaitForClose(2s));
}

TEST_F(HttpServerTest, Http10KeepAliveOnlyWhenAsked) {
  StartServer({}, EchoHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("connection"), "keep-alive");
  ASSERT_TRUE(c->Send("GET /b HTTP/1.0\r\n\r\n"));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /b ");
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(c->WaitForClose(2s));
}

TEST_F(HttpServerTest, PipelinedRequestsAnsweredInOrder) {
  // The first request is slow: later ones must still come back after it, in order.
  StartServer({.handler_threads = 4}, [](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
    if (req.path == "/slow") std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(w->Send(200, "text/plain", req.path + ":" + req.body).ok());
  });
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/slow") + Post("/p", "xyz") + Get("/fast") +
                      "HEAD /head HTTP/1.1\r\nHost: a\r\n\r\n" + Get("/after-head")));
  for (const std::string expected : {"/slow:", "/p:xyz", "/fast:"}) {
    auto r = c->ReadResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, expected);
  }
  // HEAD: the length of the body that GET would send, and no body.
  auto head = c->ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->Header("content-length"), "6");
  auto after = c->ReadResponse();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->body, "/after-head:");
}

TEST_F(HttpServerTest, PipelinedFloodWhileARequestIsInFlight) {
  // While the first response is pending the server buffers a bounded amount of what follows and
  // then stops reading; once the response is out it resumes and answers everything in order.
  StartServer({.max_requests_per_connection = 30000},
              [this](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
                if (req.path == "/first") return parked_.Push(std::move(w), std::move(req));
                ASSERT_TRUE(w->Send(200, "text/plain", req.path).ok());
              });
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/first")));
  ASSERT_TRUE(parked_.WaitFor(1));
  constexpr int kRequests = 20000;  // ~600 KB, more than the server buffers
  std::string flood;
  for (int i = 0; i < kRequests; ++i) flood += Get(std::string("/").append(std::to_string(i)));
  std::thread sender([&] { EXPECT_TRUE(c->Send(flood)); });
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(parked_.At(0)->Send(200, "text/plain", "first").ok());
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "first");
  for (int i = 0; i < kRequests; ++i) {
    r = c->ReadResponse();
    ASSERT_TRUE(r) << i;
    ASSERT_EQ(r->body, std::string("/").append(std::to_string(i)));
  }
  sender.join();
}

TEST_F(HttpServerTest, LargeBodyGets413WithoutReachingTheHandler) {
  std::atomic<int> calls{0};
  StartServer({.limits = {.max_body_bytes = 1000}},
              [&](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
                calls.fetch_add(1);
                ASSERT_TRUE(w->Send(200, "text/plain", "ok").ok());
              });
  // Declared too large: answered as soon as the headers are in; the client that keeps sending
  // the body still reads the 413 (the server drains before closing).
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Post("/v1/completions", std::string(100000, 'x'))));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_NE(r->body.find("larger than the limit of 1000"), std::string::npos) << r->body;
  EXPECT_TRUE(c->WaitForClose(3s));

  // Chunked and too large.
  c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" +
                      std::string(1024, 'y') + "\r\n"));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);

  // Exactly the limit is fine.
  c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Post("/x", std::string(1000, 'z'))));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(HttpServerTest, ExpectContinue) {
  StartServer({.limits = {.max_body_bytes = 100}}, EchoHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(
      c->Send("POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  auto interim = c->ReadHead();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c->Send("hello"));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /up hello");

  // Too large: the final answer comes instead of 100 Continue, and no body is awaited.
  ASSERT_TRUE(c->Send(
      "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n"));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
}

TEST_F(HttpServerTest, GarbageAndProtocolErrorsAreAnsweredAndClosed) {
  StartServer({.limits = {.max_request_line = 100, .max_header_bytes = 512}}, EchoHandler());
  struct Case {
    std::string bytes;
    int status;
  };
  const std::vector<Case> cases = {
      {"hello world\r\n\r\n", 400},
      {std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n", 13), 400},
      {"GET / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505},
      {"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
      {"GET /" + std::string(200, 'a') + " HTTP/1.1\r\n", 414},
      {"GET / HTTP/1.1\r\nHost: a\r\nCookie: " + std::string(1000, 'c') + "\r\n\r\n", 431},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
  };
  for (const Case& tc : cases) {
    auto c = Connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->Send(tc.bytes));
    auto r = c->ReadResponse();
    ASSERT_TRUE(r) << tc.bytes;
    EXPECT_EQ(r->status, tc.status) << tc.bytes;
    EXPECT_EQ(r->Header("connection"), "close");
    EXPECT_EQ(r->Header("content-type"), "application/json");
    EXPECT_NE(r->body.find("\"error\""), std::string::npos);
    EXPECT_TRUE(c->WaitForClose(3s)) << tc.bytes;
  }
  ASSERT_TRUE(WaitForLogs(cases.size()));
  EXPECT_EQ(Logs()[0].status, 400);
  EXPECT_EQ(Logs()[0].method, "-");
}

TEST_F(HttpServerTest, ForgottenOrThrowingHandlerGets500) {
  StartServer({}, [](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
    if (req.path == "/throw") throw std::runtime_error("boom");
    // "/forget": returns without answering.
  });
  auto c = Connect();
  ASSERT_TRUE(c);
  for (const std::string path : {"/forget", "/throw"}) {
    ASSERT_TRUE(c->Send(Get(path)));
    auto r = c->ReadResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_NE(r->body.find("no response"), std::string::npos);
  }
  // The connection stays usable.
  EXPECT_EQ(server_->open_connections(), 1);
}

TEST_F(HttpServerTest, WriterRejectsMisuse) {
  StartServer({}, ParkingHandler());
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/")));
  ASSERT_TRUE(parked_.WaitFor(1));
  auto w = parked_.At(0);
  EXPECT_EQ(w->Send(HttpResponse{.headers = {{"Content-Length", "3"}}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(w->Send(HttpResponse{.headers = {{"X-A", "v\r\nSet-Cookie: x"}}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(w->Send(HttpResponse{.headers = {{"Bad Name", "v"}}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(w->Send(HttpResponse{.status = 99}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w->Send(HttpResponse{.status = 204, .body = "x"}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w->Write("x"), WriteResult::kClosed);  // no stream started
  EXPECT_EQ(w->End().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(w->Send(HttpResponse{.status = 204}).ok());
  EXPECT_EQ(w->Send(200, "text/plain", "again").code(), StatusCode::kInvalidArgument);
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_FALSE(r->Has("content-length"));
}

TEST_F(HttpServerTest, IdleKeepAliveClosedAndSlowRequestGets408) {
  StartServer({.idle_timeout = 300ms}, EchoHandler());
  auto idle = Connect();
  ASSERT_TRUE(idle);
  ASSERT_TRUE(idle->Send(Get("/")));
  ASSERT_TRUE(idle->ReadResponse());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(idle->WaitForClose(3s));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);

  auto slow = Connect();
  ASSERT_TRUE(slow);
  ASSERT_TRUE(slow->Send("GET / HTTP/1.1\r\nHo"));
  auto r = slow->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(slow->WaitForClose(3s));
}

TEST_F(HttpServerTest, ConnectionsPastTheCapGet503) {
  StartServer({.max_connections = 2}, EchoHandler());
  EXPECT_EQ(server_->max_connections(), 2);
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Send(Get("/")) && a->ReadResponse());
  ASSERT_TRUE(b->Send(Get("/")) && b->ReadResponse());
  auto c = Connect();
  ASSERT_TRUE(c);
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  // Once one leaves, a new client gets in.
  a.reset();
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (server_->open_connections() > 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  auto d = Connect();
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->Send(Get("/")));
  r = d->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, StartFailsCleanlyOnBadAddress) {
  HttpServer bad({.host = "no such host.invalid", .port = 0}, EchoHandler());
  const Status st = bad.Start();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();

  StartServer({}, EchoHandler());
  HttpServer clash({.host = "127.0.0.1", .port = server_->port()}, EchoHandler());
  const Status in_use = clash.Start();
  EXPECT_EQ(in_use.code(), StatusCode::kIoError) << in_use.ToString();
  EXPECT_NE(in_use.message().find("in use"), std::string::npos) << in_use.ToString();

  HttpServer no_handler({.port = 0}, nullptr);
  EXPECT_EQ(no_handler.Start().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gannet::http::testing
