#include "hub/progress.h"

#include <gtest/gtest.h>

namespace gannet::hub {
namespace {

TEST(ProgressTest, Text) {
  EXPECT_EQ(FormatBytes(999), "999 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(253113024), "241.4 MiB");
  EXPECT_EQ(FormatDuration(42), "42 s");
  EXPECT_EQ(FormatDuration(185), "3 min 05 s");
  EXPECT_EQ(FormatDuration(3720), "1 h 02 min");
  EXPECT_EQ(ProgressLine("f.gguf", 512, 1024, 256, true),
            "f.gguf  50% [############            ] 512 B / 1.00 KiB  256 B/s  ETA 2 s");
  EXPECT_EQ(ProgressLine("f.gguf", 512, 1024, 0, false), "f.gguf  50% 512 B / 1.00 KiB");
  EXPECT_EQ(ProgressLine("f.gguf", 512, -1, 0, false), "f.gguf 512 B");
}

}  // namespace
}  // namespace gannet::hub
