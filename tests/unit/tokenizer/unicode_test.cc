// The generated \p{L} / \p{N} tables (llama.cpp's Unicode 15.1).
#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

namespace gannet::unicode {
namespace {

TEST(UnicodeTest, Classes) {
  EXPECT_TRUE(IsLetter('a'));
  EXPECT_TRUE(IsLetter(0x4E2D));    // 中
  EXPECT_TRUE(IsLetter(0x2EBF0));   // CJK Extension I (Unicode 15.1), as llama.cpp's table
  EXPECT_FALSE(IsLetter(0x105C0));  // Todhri (Unicode 16): unassigned for llama.cpp
  EXPECT_TRUE(IsNumber('7'));
  EXPECT_TRUE(IsNumber(0x0661));  // Arabic-Indic one
  EXPECT_TRUE(IsNumber(0x00B2));  // superscript two (No)
  EXPECT_FALSE(IsNumber(0x1F600));
  EXPECT_FALSE(IsLetter(0x110000));
}

}  // namespace
}  // namespace gannet::unicode
