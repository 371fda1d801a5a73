#include "server/termination_signal.h"

#include <signal.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace gannet::server {
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

}  // namespace
}  // namespace gannet::server
