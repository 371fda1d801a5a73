// StopStrings / StopMatcher: stop strings split across pieces, overlapping prefixes, several
// stops, the guarantee that no released text ever contains the start of a stop string that later
// completes, the limits, and a cost per piece that does not grow with the stop strings.
#include "engine/stop_strings.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

namespace gannet::engine {
namespace {

StopMatcher Matcher(const std::vector<std::string>& stops) {
  Result<std::shared_ptr<const StopStrings>> s = StopStrings::Compile(stops);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return StopMatcher(s.ok() ? *s : nullptr);
}

// Feeds `pieces` and returns (released text, matched).
std::pair<std::string, bool> Feed(std::vector<std::string> stops,
                                  const std::vector<std::string>& pieces) {
  StopMatcher m = Matcher(stops);
  std::string out;
  for (const std::string& p : pieces) out += m.Push(p);
  out += m.Flush();
  return {out, m.matched()};
}

TEST(StopStringsTest, NoStopsPassesEverything) {
  StopMatcher m = Matcher({});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_EQ(m.Push(""), "");
  EXPECT_EQ(m.Flush(), "");
  EXPECT_FALSE(m.matched());
}

TEST(StopStringsTest, StopInsideOnePiece) {
  StopMatcher m = Matcher({"END"});
  EXPECT_EQ(m.Push("helloENDworld"), "hello");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringsTest, StopAcrossTokenBoundariesIsHeldBack) {
  StopMatcher m = Matcher({"STOP"});
  EXPECT_EQ(m.Push("abc S"), "abc ");  // "S" could start STOP
  EXPECT_EQ(m.held_bytes(), 1u);
  EXPECT_EQ(m.Push("T"), "");
  EXPECT_EQ(m.Push("O"), "");
  EXPECT_EQ(m.Push("P tail"), "");
  EXPECT_TRUE(m.matched());
}

TEST(StopStringsTest, HeldTextIsReleasedWhenItCannotMatch) {
  StopMatcher m = Matcher({"STOP"});
  EXPECT_EQ(m.Push("ST"), "");
  EXPECT_EQ(m.Push("AR"), "STAR");
  EXPECT_FALSE(m.matched());
  EXPECT_EQ(m.Push("ST"), "");
  EXPECT_EQ(m.Flush(), "ST");  // generation ended: what was held is text after all
}

TEST(StopStringsTest, OverlappingPrefixes) {
  // "aab": after "aa" + "a" the held tail must shift to "aa" (the last two), not be dropped.
  EXPECT_EQ(Feed({"aab"}, {"a", "a", "a", "b", "c"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(Feed({"abab"}, {"xab", "a", "bab"}), std::make_pair(std::string("x"), true));
  EXPECT_EQ(Feed({"abab"}, {"ab", "a", "c"}), std::make_pair(std::string("abac"), false));
}

TEST(StopStringsTest, MultipleStopsEarliestWins) {
  EXPECT_EQ(Feed({"world", "lo"}, {"hello world"}), std::make_pair(std::string("hel"), true));
  EXPECT_EQ(Feed({"xyz", "b"}, {"a", "xy", "b"}), std::make_pair(std::string("axy"), true));
  // One stop is a prefix of another: the shorter completes first.
  EXPECT_EQ(Feed({"ab", "abc"}, {"1a", "bc"}), std::make_pair(std::string("1"), true));
  // Held for the longer of two candidate prefixes.
  StopMatcher m = Matcher({"xa", "yxb"});
  EXPECT_EQ(m.Push("1yx"), "1");
  EXPECT_EQ(m.held_bytes(), 2u);
  EXPECT_EQ(m.Push("b"), "");
  EXPECT_TRUE(m.matched());
}

TEST(StopStringsTest, MultibyteStopStrings) {
  // "é" is 2 bytes; a stop of "éx" must not release a lone "é" byte-split nor the "é" before x.
  EXPECT_EQ(Feed({"\xC3\xA9x"}, {"a\xC3\xA9", "x"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(Feed({"\xC3\xA9x"}, {"a\xC3\xA9", "y"}),
            std::make_pair(std::string("a\xC3\xA9y"), false));
}

// Against a reference: the full text cut at the first occurrence of any stop; and no released
// prefix ever extends into the part a later stop cuts away.
TEST(StopStringsTest, RandomSplitsAgreeWithReference) {
  std::mt19937 rng(7);
  const std::vector<std::string> stops = {"ab", "bba", "cab", "aaaa"};
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    int len = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < len; ++i) text.push_back("abc"[rng() % 3]);
    size_t cut = std::string::npos;
    for (const auto& s : stops) cut = std::min(cut, text.find(s));
    const std::string expected = cut == std::string::npos ? text : text.substr(0, cut);

    StopMatcher m = Matcher(stops);
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t n = 1 + rng() % 3;
      out += m.Push(text.substr(pos, n));
      pos += n;
      ASSERT_EQ(expected.compare(0, out.size(), out), 0) << text;  // never beyond the cut
      ASSERT_LE(out.size(), expected.size()) << text;
    }
    out += m.Flush();
    EXPECT_EQ(out, expected) << text;
    EXPECT_EQ(m.matched(), cut != std::string::npos) << text;
  }
}

// With stop strings that nest (one inside another, ending earlier), the earliest to complete wins
// whatever the split, so streaming and whole-text matching agree.
TEST(StopStringsTest, EarliestCompletionWinsWhateverTheSplit) {
  EXPECT_EQ(Feed({"abcd", "bc"}, {"abcd"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(Feed({"abcd", "bc"}, {"a", "b", "c", "d"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(Feed({"ab", "cab"}, {"xcab"}),
            std::make_pair(std::string("x"), true));  // longest ending there
}

TEST(StopStringsTest, EveryByteValueAndLimits) {
  std::string all;
  for (int b = 1; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(Feed({all, "\xff\xfe"}, {all.substr(0, 200), all.substr(200)}),
            std::make_pair(std::string(), true));
  EXPECT_EQ(Feed({"\xff\xfe"}, {"a\xff", "\xff\xfe"}), std::make_pair(std::string("a\xff"), true));
  EXPECT_FALSE(StopStrings::Compile(std::vector<std::string>(kMaxStopStrings + 1, "x")).ok());
  EXPECT_FALSE(StopStrings::Compile({std::string(kMaxStopBytes + 1, 'x')}).ok());
  EXPECT_TRUE(StopStrings::Compile({std::string(kMaxStopBytes, 'x')}).ok());
  EXPECT_TRUE(StopStrings::Compile({"", "", ""}).ok());
  EXPECT_TRUE((*StopStrings::Compile({"", ""}))->empty());
  // The table stays small whatever a request sends: long strings over every byte value are
  // refused, the largest table allowed is 1 MiB.
  std::string varied;
  while (varied.size() + all.size() <= kMaxStopBytes) varied += all;
  const Result<std::shared_ptr<const StopStrings>> big = StopStrings::Compile({varied});
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("too varied"), std::string::npos);
  // The longest stop strings allowed, in ordinary text (letters, digits, punctuation), fit.
  std::vector<std::string> prose;
  for (size_t i = 0; i < kMaxStopStrings; ++i) {
    std::string p;
    while (p.size() < kMaxStopBytes / kMaxStopStrings) {
      p.push_back(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:"[(p.size() * 7 + i) %
                                                                               66]);
    }
    prose.push_back(std::move(p));
  }
  EXPECT_TRUE(StopStrings::Compile(prose).ok());
  const Result<std::shared_ptr<const StopStrings>> wide = StopStrings::Compile({all});
  ASSERT_TRUE(wide.ok());
  EXPECT_LE((*wide)->table_bytes(), kMaxStopTableCells * sizeof(uint16_t));
}

// The worst case for re-searching the held text: the longest stop strings allowed, all of one
// byte, fed a byte at a time that keeps almost all of them pending. Each piece costs one table
// step, so 1 MiB of text takes well under a second (the old matcher did ~kMaxStopBytes^2 work
// per piece here).
TEST(StopStringsTest, CostPerPieceDoesNotGrowWithStopLength) {
  std::vector<std::string> stops;
  for (size_t i = 0; i < kMaxStopStrings; ++i) {
    stops.push_back(std::string(kMaxStopBytes / kMaxStopStrings - 1, 'a') +
                    static_cast<char>('b' + i));
  }
  StopMatcher m = Matcher(stops);
  const auto start = std::chrono::steady_clock::now();
  size_t released = 0;
  for (int i = 0; i < (1 << 20); ++i) released += m.Push("a").size();
  EXPECT_FALSE(m.matched());
  EXPECT_EQ(m.held_bytes(), kMaxStopBytes / kMaxStopStrings - 1);
  EXPECT_EQ(released + m.held_bytes(), size_t{1} << 20);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

}  // namespace
}  // namespace gannet::engine
