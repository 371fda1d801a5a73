#include "http/termination_signal.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "http/http_server.h"
#include "http/sse.h"
#include "test_client.h"

namespace gannet::http {
namespace {

using namespace std::chrono_literals;

TEST(TerminationSignalTest, WaitReturnsTheSignalThatArrived) {
  ASSERT_TRUE(BlockTerminationSignals().ok());
  // Blocked: the default action (terminate) does not run; the signal stays pending for the wait.
  ASSERT_EQ(raise(SIGTERM), 0);
  EXPECT_EQ(WaitForTerminationSignal(1s), SIGTERM);
  ASSERT_EQ(raise(SIGINT), 0);
  EXPECT_EQ(WaitForTerminationSignal(), SIGINT);
}

TEST(TerminationSignalTest, TimesOutWhenNothingArrives) {
  ASSERT_TRUE(BlockTerminationSignals().ok());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(WaitForTerminationSignal(50ms), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 40ms);
}

// The drain a front end wires up: block the signals before any thread starts, one thread waits
// for SIGTERM and calls Shutdown; the in-flight stream completes and the listener is gone.
TEST(TerminationSignalTest, SigtermDrainsAServer) {
  ASSERT_TRUE(BlockTerminationSignals().ok());
  HttpServer server({.host = "127.0.0.1", .port = 0},
                    [](HttpRequest, std::shared_ptr<ResponseWriter> w) {
                      if (!w->StartStream(200, SseHeaders()).ok()) return;
                      w->Write(SseEvent("one"));
                      std::this_thread::sleep_for(200ms);
                      w->Write(SseDone());
                      w->End();
                    });
  ASSERT_TRUE(server.Start().ok());
  auto client = testing::TestClient::Connect(server.port());
  ASSERT_TRUE(client);
  ASSERT_TRUE(
      client->Send("POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"));
  ASSERT_TRUE(client->ReadHead());

  std::optional<int> received;
  std::thread waiter([&] {
    received = WaitForTerminationSignal(10s);
    if (received) server.Shutdown(5s);
  });
  ASSERT_EQ(kill(getpid(), SIGTERM),
            0);  // to the process, as `kill` or a container runtime sends it
  waiter.join();
  EXPECT_EQ(received, SIGTERM);
  auto first = client->ReadChunk();
  auto done = client->ReadChunk();
  auto end = client->ReadChunk();
  ASSERT_TRUE(first && done && end);
  EXPECT_EQ(*first, SseEvent("one"));
  EXPECT_EQ(*done, SseDone());
  EXPECT_TRUE(end->empty());
  EXPECT_EQ(testing::TestClient::Connect(server.port()), nullptr);
}

}  // namespace
}  // namespace gannet::http
