#include "hub/pull.h"

#include <gtest/gtest.h>

namespace gannet::hub {
namespace {

TEST(HubUrlTest, Normalized) {
  EXPECT_EQ(NormalizeHubUrl("https://huggingface.co/").value(), "https://huggingface.co");
  EXPECT_EQ(NormalizeHubUrl("http://127.0.0.1:8080/mirror").value(),
            "http://127.0.0.1:8080/mirror");
  for (const char* bad : {"", "huggingface.co", "ftp://x", "file:///etc", "https://"}) {
    EXPECT_EQ(NormalizeHubUrl(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(EscapePath("Q4_K_M/a b+c.gguf"), "Q4_K_M/a%20b%2Bc.gguf");
}

TEST(HubUrlTest, NextLink) {
  EXPECT_EQ(NextLink(R"(<https://h/api/x?cursor=abc>; rel="next")"), "https://h/api/x?cursor=abc");
  EXPECT_EQ(NextLink(R"(<https://h/p1>; rel="prev", <https://h/p3>; rel="next")"), "https://h/p3");
  EXPECT_EQ(NextLink(R"(<https://h/p1>; rel="last")"), "");
  EXPECT_EQ(NextLink("garbage <"), "");
}

}  // namespace
}  // namespace gannet::hub
