// Hermetic tokenizer tests on tiny in-memory vocabularies: SPM merges and byte fallback, BPE merges
// and pre-tokenizers, special-token partitioning, decoding and the end-of-generation set.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/pre_tokenizer.h"

namespace gannet {
namespace {

using Ids = std::vector<int32_t>;
const std::string kSp = "\xE2\x96\x81";  // U+2581

// SPM vocabulary: control <unk> <s> </s>, 256 byte tokens, then pieces with scores.
VocabSpec SpmSpec() {
  VocabSpec s;
  s.model = VocabModel::kSpm;
  s.add_space_prefix = false;
  auto add = [&](std::string text, float score, TokenType type) {
    s.tokens.push_back(std::move(text));
    s.scores.push_back(score);
    s.types.push_back(type);
  };
  add("<unk>", 0, TokenType::kUnknown);          // 0
  add("<s>", 0, TokenType::kControl);            // 1
  add("</s>", 0, TokenType::kControl);           // 2
  add("<end_of_turn>", 0, TokenType::kControl);  // 3
  add("<tool>", 0, TokenType::kUserDefined);     // 4
  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {  // 5 .. 260
    add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 0, TokenType::kByte);
  }
  add("h", -1, TokenType::kNormal);              // 261
  add("e", -1, TokenType::kNormal);              // 262
  add("l", -1, TokenType::kNormal);              // 263
  add("o", -1, TokenType::kNormal);              // 264
  add("he", -2, TokenType::kNormal);             // 265
  add("ll", -3, TokenType::kNormal);             // 266
  add("hell", -4, TokenType::kNormal);           // 267
  add("hello", -5, TokenType::kNormal);          // 268
  add(kSp, -1, TokenType::kNormal);              // 269
  add(kSp + "hello", -0.5, TokenType::kNormal);  // 270
  add("lo", -2.5, TokenType::kNormal);           // 271
  s.bos = 1;
  s.eos = 2;
  s.unk = 0;
  return s;
}

std::unique_ptr<Tokenizer> Make(VocabSpec spec) {
  Result<std::unique_ptr<Tokenizer>> t = Tokenizer::FromVocab(std::move(spec));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(SpmTest, MergesByScore) {
  auto tok = Make(SpmSpec());
  // "hello": he(-2) and ll(-3) and lo(-2.5): he first, then lo (-2.5) beats ll (-3): he|l|lo -> no
  // "hell".
  EXPECT_EQ(tok->Encode("hello", false, false), (Ids{265, 263, 271}));
  // Pairs merge one at a time, so "▁hello" (a token) is unreachable without "▁h..." pieces.
  EXPECT_EQ(tok->Encode(" hello", false, false), (Ids{269, 265, 263, 271}));
  EXPECT_EQ(tok->Encode("hello", true, false), (Ids{1, 265, 263, 271}));
}

TEST(SpmTest, ByteFallbackForUnknownCharacters) {
  auto tok = Make(SpmSpec());
  // "é" = C3 A9 is not a token: two byte tokens (5 + byte).
  EXPECT_EQ(tok->Encode("\xC3\xA9", false, false), (Ids{5 + 0xC3, 5 + 0xA9}));
  // Invalid UTF-8 is bytes too, never a crash.
  EXPECT_EQ(tok->Encode("\xFF\x80", false, false), (Ids{5 + 0xFF, 5 + 0x80}));
  EXPECT_EQ(tok->Decode(Ids{5 + 0xC3, 5 + 0xA9}, false), "\xC3\xA9");
}

TEST(SpmTest, SpacePrefixAndDecode) {
  VocabSpec spec = SpmSpec();
  spec.add_space_prefix = true;
  auto tok = Make(spec);
  EXPECT_EQ(tok->Encode("hello", false, false), (Ids{269, 265, 263, 271}));
  EXPECT_EQ(tok->Decode(Ids{270}, false), "hello");  // the first token loses the prefix space
  EXPECT_EQ(tok->Decode(Ids{269, 265, 263, 271}, false), "hello");
  EXPECT_EQ(tok->Decode(Ids{268, 270}, false), "hello hello");
  EXPECT_EQ(tok->TokenToPiece(270, false), " hello");
}

TEST(SpecialTest, PartitionControlTokensOnlyWithParseSpecial) {
  auto tok = Make(SpmSpec());
  const Ids parsed = tok->Encode("hello<end_of_turn>hello", false, true);
  EXPECT_EQ(parsed, (Ids{265, 263, 271, 3, 265, 263, 271}));
  const Ids plain = tok->Encode("<end_of_turn>", false, false);
  EXPECT_TRUE(std::find(plain.begin(), plain.end(), 3) == plain.end());
  // User-defined tokens are always single tokens.
  EXPECT_EQ(tok->Encode("<tool>", false, false), (Ids{4}));
  // Rendering: control tokens only with render_special, user-defined always.
  EXPECT_EQ(tok->Decode(Ids{3, 4}, false), "<tool>");
  EXPECT_EQ(tok->Decode(Ids{3, 4}, true), "<end_of_turn><tool>");
}

TEST(SpecialTest, EndOfGenerationByText) {
  auto tok = Make(SpmSpec());
  EXPECT_TRUE(tok->IsEndOfGeneration(2));  // eos
  EXPECT_TRUE(tok->IsEndOfGeneration(3));  // <end_of_turn>, recognised by its text
  EXPECT_FALSE(tok->IsEndOfGeneration(1));
  EXPECT_FALSE(tok->IsEndOfGeneration(-1));
  EXPECT_EQ(tok->eot(), 3);
  EXPECT_EQ(tok->FindToken("hello"), 268);
  EXPECT_EQ(tok->FindToken("nope"), std::nullopt);
}

TEST(VocabTest, Errors) {
  VocabSpec empty;
  EXPECT_FALSE(Tokenizer::FromVocab(empty).ok());
  VocabSpec bad_id = SpmSpec();
  bad_id.bos = 100000;
  EXPECT_EQ(Tokenizer::FromVocab(bad_id).status().code(), StatusCode::kOutOfRange);
  VocabSpec dup = SpmSpec();
  dup.tokens[262] = "h";
  EXPECT_EQ(Tokenizer::FromVocab(dup).status().code(), StatusCode::kCorrupt);
  VocabSpec bpe;
  bpe.model = VocabModel::kBpe;
  bpe.pre = "no-such-pre";
  bpe.tokens = {"a"};
  bpe.merges = {"a a"};
  const Status s = Tokenizer::FromVocab(bpe).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("no-such-pre"), std::string::npos);
}

// Byte-level BPE with the GPT-2 pre-tokenizer: ASCII letters, 'Ġ' (space), merges.
VocabSpec BpeSpec() {
  VocabSpec s;
  s.model = VocabModel::kBpe;
  s.pre = "gpt-2";
  s.tokens = {"h",  "e",    "l",     "o",         "\xC4\xA0" /*Ġ*/, "he",
              "ll", "hell", "hello", "\xC4\xA0h", "<|endoftext|>",  "1",
              "2",  "12"};
  s.types.assign(s.tokens.size(), TokenType::kNormal);
  s.types[10] = TokenType::kControl;
  s.merges = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 h", "1 2"};
  s.bos = s.eos = 10;
  return s;
}

TEST(BpeTest, MergesByRank) {
  auto tok = Make(BpeSpec());
  EXPECT_EQ(tok->Encode("hello", false, false), (Ids{8}));
  // " hello" is one pre-token "Ġhello": "h e" (rank 0) merges before "Ġ h", leaving Ġ alone.
  EXPECT_EQ(tok->Encode(" hello", false, false), (Ids{4, 8}));
  EXPECT_EQ(tok->Decode(Ids{4, 8}, false), " hello");
  EXPECT_EQ(tok->Encode("12", false, false), (Ids{13}));
}

TEST(BpeTest, UnknownBytesAreDroppedLikeLlamaCpp) {
  auto tok = Make(BpeSpec());
  // 'x' has no token and no one-byte token: dropped.
  EXPECT_EQ(tok->Encode("hex", false, false), (Ids{5}));
  // Invalid UTF-8 must not crash.
  EXPECT_NO_FATAL_FAILURE(tok->Encode("\xFF\xC3", false, true));
}

TEST(BpeTest, SmollmSplitsDigits) {
  VocabSpec spec = BpeSpec();
  spec.pre = "smollm";
  auto tok = Make(spec);
  EXPECT_EQ(tok->Encode("12", false, false), (Ids{11, 12}));
}

TEST(PreTokenizerTest, Gpt2AndLlama3) {
  using V = std::vector<std::string>;
  EXPECT_EQ(PreTokenize(PreTokenizerKind::kGpt2, "Hello world's 1234  x"),
            (V{"Hello", " world", "'s", " 1234", " ", " x"}));
  EXPECT_EQ(PreTokenize(PreTokenizerKind::kLlama3, "Hello WORLD'S 1234567\n\nx"),
            (V{"Hello", " WORLD", "'S", " ", "123", "456", "7", "\n\n", "x"}));
  EXPECT_EQ(PreTokenize(PreTokenizerKind::kQwen2, "a 123"), (V{"a", " ", "1", "2", "3"}));
  // Bad bytes become U+FFFD.
  EXPECT_EQ(PreTokenize(PreTokenizerKind::kGpt2, "\xFF"), (V{"\xEF\xBF\xBD"}));
}

TEST(ByteLevelTest, RoundTrip) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(ByteLevelDecode(ByteLevelEncode(all)), all);
  EXPECT_EQ(ByteLevelEncode(" "), "\xC4\xA0");
}

TEST(IncrementalDecoderTest, HoldsSplitEmojiUntilComplete) {
  auto tok = Make(SpmSpec());
  // U+1F600 = F0 9F 98 80 as four byte tokens.
  IncrementalDecoder dec(*tok);
  EXPECT_EQ(dec.Feed(5 + 0xF0), "");
  EXPECT_EQ(dec.Feed(5 + 0x9F), "");
  EXPECT_EQ(dec.Feed(5 + 0x98), "");
  EXPECT_TRUE(dec.has_pending());
  EXPECT_EQ(dec.Feed(5 + 0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(dec.Feed(268), "hello");
  EXPECT_EQ(dec.Finish(), "");
}

TEST(IncrementalDecoderTest, InvalidBytesBecomeReplacementCharacters) {
  auto tok = Make(SpmSpec());
  const std::string kFffd = "\xEF\xBF\xBD";
  IncrementalDecoder dec(*tok);
  EXPECT_EQ(dec.Feed(5 + 0xFF), kFffd);       // can never start a character
  EXPECT_EQ(dec.Feed(5 + 0xE2), "");          // may still complete
  EXPECT_EQ(dec.Feed(268), kFffd + "hello");  // it did not: E2 released as U+FFFD
  EXPECT_EQ(dec.Feed(5 + 0xF0), "");
  EXPECT_EQ(dec.Feed(5 + 0x9F), "");
  EXPECT_EQ(dec.Finish(), kFffd);  // dangling tail at the end: one U+FFFD
  EXPECT_FALSE(dec.has_pending());
}

TEST(IncrementalDecoderTest, JoinsToFullDecode) {
  auto tok = Make(SpmSpec());
  const Ids ids = tok->Encode("hello \xF0\x9F\x98\x80 h\xC3\xA9llo <end_of_turn>", true, true);
  IncrementalDecoder dec(*tok, /*render_special=*/true);
  std::string joined;
  for (const int32_t id : ids) joined += dec.Feed(id);
  joined += dec.Finish();
  EXPECT_EQ(joined, tok->Decode(ids, true));
}

}  // namespace
}  // namespace gannet
