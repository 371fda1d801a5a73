// OutputProcessor: one sample's tokens -> text deltas (whole UTF-8 only, stop strings held back
// and cut), end of generation, and the text released when the sample ends.
#include "engine/output_processor.h"

#include <gtest/gtest.h>

namespace gannet::engine {
namespace {

// SPM-style vocabulary: <unk> <s> </s>, byte tokens <0x00>..<0xFF> (3..258), then a few pieces.
std::unique_ptr<Tokenizer> MakeTokenizer() {
  VocabSpec s;
  auto add = [&](const std::string& text, TokenType type) {
    s.tokens.push_back(text);
    s.types.push_back(type);
  };
  add("<unk>", TokenType::kUnknown);
  add("<s>", TokenType::kControl);
  add("</s>", TokenType::kControl);
  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b)
    add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", TokenType::kByte);
  add("ab", TokenType::kNormal);             // 259
  add("cd", TokenType::kNormal);             // 260
  add("S", TokenType::kNormal);              // 261
  add("TOP", TokenType::kNormal);            // 262
  add("[TOOL_CALLS]", TokenType::kControl);  // 263
  s.bos = 1;
  s.eos = 2;
  s.unk = 0;
  s.add_space_prefix = false;
  Result<std::unique_ptr<Tokenizer>> t = Tokenizer::FromVocab(std::move(s));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

constexpr int32_t kEos = 2, kAb = 259, kCd = 260, kS = 261, kTop = 262, kToolCalls = 263;
int32_t Byte(unsigned char b) { return 3 + b; }

std::shared_ptr<const StopStrings> Stops(const std::vector<std::string>& s) {
  return *StopStrings::Compile(s);
}

TEST(OutputProcessorTest, ReleasesWholeCharactersWithOffsets) {
  auto tok = MakeTokenizer();
  OutputProcessor p(*tok, true, nullptr);
  TokenOutput a = p.Process(kAb);
  EXPECT_EQ(a.text, "ab");
  EXPECT_EQ(a.text_offset, 0);
  TokenOutput b = p.Process(Byte(0xC3));  // the first byte of "é": nothing yet
  EXPECT_EQ(b.text, "");
  EXPECT_TRUE(b.emitted);
  EXPECT_FALSE(b.finished);
  TokenOutput c = p.Process(Byte(0xA9));
  EXPECT_EQ(c.text, "\xC3\xA9");
  EXPECT_EQ(c.text_offset, 2);
  EXPECT_EQ(p.Process(kCd).text_offset, 4);
  EXPECT_EQ(p.Finish(), "");
}

// Chosen control tokens (tool-call markers) are text; other control tokens stay out of it.
TEST(OutputProcessorTest, RendersOnlyTheChosenControlTokens) {
  auto tok = MakeTokenizer();
  OutputProcessor p(*tok, true, nullptr, {kToolCalls});
  EXPECT_EQ(p.Process(kAb).text, "ab");
  EXPECT_EQ(p.Process(1).text, "");  // <s>: a control token not chosen
  TokenOutput m = p.Process(kToolCalls);
  EXPECT_EQ(m.text, "[TOOL_CALLS]");
  EXPECT_EQ(m.text_offset, 2);
  EXPECT_EQ(p.Process(kCd).text_offset, 14);
  TokenOutput end = p.Process(kEos);  // the end of generation is never text
  EXPECT_FALSE(end.emitted);
  EXPECT_EQ(end.text, "");
  OutputProcessor plain(*tok, true, nullptr);
  EXPECT_EQ(plain.Process(kToolCalls).text, "");
  // A stop string may end on a rendered marker.
  OutputProcessor q(*tok, true, Stops({"b[TOOL"}), {kToolCalls});
  EXPECT_EQ(q.Process(kAb).text, "a");  // "b" may begin the stop string
  TokenOutput stop = q.Process(kToolCalls);
  EXPECT_TRUE(stop.finished);
  EXPECT_EQ(stop.text, "");
}

TEST(OutputProcessorTest, EndOfGenerationEndsTheSampleAndFlushes) {
  auto tok = MakeTokenizer();
  OutputProcessor p(*tok, true, Stops({"STOP"}));
  EXPECT_EQ(p.Process(kAb).text, "ab");
  EXPECT_EQ(p.Process(kS).text, "");  // may be the start of STOP
  TokenOutput e = p.Process(kEos);
  EXPECT_FALSE(e.emitted);
  EXPECT_TRUE(e.finished);
  EXPECT_EQ(e.text, "S");  // it was not a stop string after all
  EXPECT_TRUE(p.finished());
  EXPECT_FALSE(p.stop_string_matched());
  EXPECT_EQ(p.Finish(), "");

  // With stop_at_eog off the same id is an ordinary token (a control token: no text).
  OutputProcessor q(*tok, false, nullptr);
  TokenOutput f = q.Process(kEos);
  EXPECT_TRUE(f.emitted);
  EXPECT_FALSE(f.finished);
  EXPECT_EQ(f.text, "");
}

TEST(OutputProcessorTest, StopStringAcrossTokens) {
  auto tok = MakeTokenizer();
  OutputProcessor p(*tok, true, Stops({"bc", "never"}));
  EXPECT_EQ(p.Process(kAb).text, "a");  // "b" is held: it may start "bc"
  TokenOutput t = p.Process(kCd);
  EXPECT_TRUE(t.finished);
  EXPECT_TRUE(t.emitted);  // the token that completed the stop string counts as generated
  EXPECT_EQ(t.text, "");
  EXPECT_TRUE(p.stop_string_matched());
  EXPECT_EQ(p.Finish(), "");

  OutputProcessor q(*tok, true, Stops({"STOP"}));
  EXPECT_EQ(q.Process(kS).text, "");
  EXPECT_TRUE(q.Process(kTop).finished);
}

TEST(OutputProcessorTest, FinishReleasesHeldText) {
  auto tok = MakeTokenizer();
  OutputProcessor p(*tok, true, Stops({"STOP"}));
  EXPECT_EQ(p.Process(kAb).text, "ab");
  EXPECT_EQ(p.Process(kS).text, "");
  EXPECT_EQ(p.Process(Byte(0xE2)).text, "");  // an incomplete character at the end
  EXPECT_EQ(p.Finish(), "S\xEF\xBF\xBD");     // held prefix, then U+FFFD
}

}  // namespace
}  // namespace gannet::engine
