// UTF-8 leniency rules (llama.cpp's), strict validation and White_Space.
#include "base/utf8.h"

#include <gtest/gtest.h>

namespace gannet::unicode {
namespace {

TEST(Utf8Test, DecodeLenientReplacesEachBadByte) {
  EXPECT_EQ(DecodeLenient("a\xC3\xA9"), (std::vector<uint32_t>{'a', 0xE9}));
  EXPECT_EQ(DecodeLenient("\xFF\x80"), (std::vector<uint32_t>{kReplacementChar, kReplacementChar}));
  EXPECT_EQ(DecodeLenient("\xE2\x82"), (std::vector<uint32_t>{kReplacementChar, kReplacementChar}));
  // Accepted as encoded, like llama.cpp: overlong NUL and a surrogate.
  EXPECT_EQ(DecodeLenient("\xC0\x80"), (std::vector<uint32_t>{0}));
  EXPECT_EQ(DecodeLenient("\xED\xA0\x80"), (std::vector<uint32_t>{0xD800}));
  // 0xF7 lead decodes past U+10FFFF; re-encoding gives U+FFFD instead of llama.cpp's exception.
  const std::vector<uint32_t> big = DecodeLenient("\xF7\xBF\xBF\xBF");
  ASSERT_EQ(big.size(), 1u);
  std::string out;
  AppendUtf8(big[0], &out);
  EXPECT_EQ(out, "\xEF\xBF\xBD");
}

TEST(Utf8Test, Whitespace) {
  EXPECT_TRUE(IsWhitespace(0x3000));
  EXPECT_TRUE(IsWhitespace(0x85));
  EXPECT_FALSE(IsWhitespace(0x200B));  // zero-width space is not White_Space
}

TEST(Utf8Test, StrictValidation) {
  EXPECT_EQ(ValidUtf8Prefix("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(ValidUtf8Prefix("ab\xF0\x9F"), 2u);
  EXPECT_TRUE(IsIncompleteUtf8Tail("\xF0\x9F"));
  EXPECT_FALSE(IsIncompleteUtf8Tail("\xF0\x41"));
  EXPECT_FALSE(IsIncompleteUtf8Tail("\xC0"));      // never valid
  EXPECT_FALSE(IsIncompleteUtf8Tail("\xED\xA0"));  // surrogate
  EXPECT_EQ(InvalidSequenceLength("\xE2\x82\x41"), 2u);
  EXPECT_EQ(InvalidSequenceLength("\xFF"), 1u);
}

}  // namespace
}  // namespace gannet::unicode
