#include "http/sse.h"

#include <gtest/gtest.h>

namespace gannet::http {
namespace {

TEST(SseTest, SingleLineEvent) {
  EXPECT_EQ(SseEvent("{\"choices\":[]}"), "data: {\"choices\":[]}\n\n");
  EXPECT_EQ(SseEvent(""), "data: \n\n");
}

TEST(SseTest, LineBreaksBecomeSeparateDataLines) {
  EXPECT_EQ(SseEvent("a\nb"), "data: a\ndata: b\n\n");
  EXPECT_EQ(SseEvent("a\r\nb\rc"), "data: a\ndata: b\ndata: c\n\n");
  EXPECT_EQ(SseEvent("a\n"), "data: a\ndata: \n\n");
  EXPECT_EQ(SseEvent("\n\n"), "data: \ndata: \ndata: \n\n");
}

TEST(SseTest, EventNameAndIdCannotBreakTheFrame) {
  EXPECT_EQ(SseEvent("x", "message", "7"), "event: message\nid: 7\ndata: x\n\n");
  EXPECT_EQ(SseEvent("x", "bad\nname"), "event: badname\ndata: x\n\n");
}

TEST(SseTest, DoneAndComment) {
  EXPECT_EQ(SseDone(), "data: [DONE]\n\n");
  EXPECT_EQ(SseComment("keep-alive"), ": keep-alive\n\n");
  EXPECT_EQ(SseComment("a\nb"), ": ab\n\n");
}

TEST(SseTest, HeadersNameTheEventStream) {
  bool content_type = false;
  for (const auto& [name, value] : SseHeaders()) {
    if (name == "Content-Type") content_type = value.rfind("text/event-stream", 0) == 0;
  }
  EXPECT_TRUE(content_type);
}

}  // namespace
}  // namespace gannet::http
