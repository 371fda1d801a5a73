// StopMatcher: stop strings split across pieces, overlapping prefixes, several stops, and the
// guarantee that no released text ever contains the start of a stop string that later completes.
#include <random>

#include <gtest/gtest.h>

#include "server/stop_matcher.h"

namespace gannet::server {
namespace {

// Feeds `pieces` and returns (released text, matched).
std::pair<std::string, bool> Feed(std::vector<std::string> stops, const std::vector<std::string>& pieces) {
  StopMatcher m(std::move(stops));
  std::string out;
  for (const std::string& p : pieces) out += m.Push(p);
  out += m.Flush();
  return {out, m.matched()};
}

TEST(OpenAiStopMatcherTest, NoStopsPassesEverything) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_EQ(m.Push(""), "");
  EXPECT_EQ(m.Flush(), "");
  EXPECT_FALSE(m.matched());
}

TEST(OpenAiStopMatcherTest, StopInsideOnePiece) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("helloENDworld"), "hello");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(OpenAiStopMatcherTest, StopAcrossTokenBoundariesIsHeldBack) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.Push("abc S"), "abc ");  // "S" could start STOP
  EXPECT_EQ(m.held_bytes(), 1u);
  EXPECT_EQ(m.Push("T"), "");
  EXPECT_EQ(m.Push("O"), "");
  EXPECT_EQ(m.Push("P tail"), "");
  EXPECT_TRUE(m.matched());
}

TEST(OpenAiStopMatcherTest, HeldTextIsReleasedWhenItCannotMatch) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.Push("ST"), "");
  EXPECT_EQ(m.Push("AR"), "STAR");
  EXPECT_FALSE(m.matched());
  EXPECT_EQ(m.Push("ST"), "");
  EXPECT_EQ(m.Flush(), "ST");  // generation ended: what was held is text after all
}

TEST(OpenAiStopMatcherTest, OverlappingPrefixes) {
  // "aab": after "aa" + "a" the held tail must shift to "aa" (the last two), not be dropped.
  EXPECT_EQ(Feed({"aab"}, {"a", "a", "a", "b", "c"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(Feed({"abab"}, {"xab", "a", "bab"}), std::make_pair(std::string("x"), true));
  EXPECT_EQ(Feed({"abab"}, {"ab", "a", "c"}), std::make_pair(std::string("abac"), false));
}

TEST(OpenAiStopMatcherTest, MultipleStopsEarliestWins) {
  EXPECT_EQ(Feed({"world", "lo"}, {"hello world"}), std::make_pair(std::string("hel"), true));
  EXPECT_EQ(Feed({"xyz", "b"}, {"a", "xy", "b"}), std::make_pair(std::string("axy"), true));
  // One stop is a prefix of another: the shorter completes first.
  EXPECT_EQ(Feed({"ab", "abc"}, {"1a", "bc"}), std::make_pair(std::string("1"), true));
  // Held for the longer of two candidate prefixes.
  StopMatcher m({"xa", "yxb"});
  EXPECT_EQ(m.Push("1yx"), "1");
  EXPECT_EQ(m.held_bytes(), 2u);
  EXPECT_EQ(m.Push("b"), "");
  EXPECT_TRUE(m.matched());
}

TEST(OpenAiStopMatcherTest, MultibyteStopStrings) {
  // "é" is 2 bytes; a stop of "éx" must not release a lone "é" byte-split nor the "é" before x.
  EXPECT_EQ(Feed({"\xC3\xA9x"}, {"a\xC3\xA9", "x"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(Feed({"\xC3\xA9x"}, {"a\xC3\xA9", "y"}), std::make_pair(std::string("a\xC3\xA9y"), false));
}

// Against a reference: the full text cut at the first occurrence of any stop; and no released
// prefix ever extends into the part a later stop cuts away.
TEST(OpenAiStopMatcherTest, RandomSplitsAgreeWithReference) {
  std::mt19937 rng(7);
  const std::vector<std::string> stops = {"ab", "bba", "cab", "aaaa"};
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    int len = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < len; ++i) text.push_back("abc"[rng() % 3]);
    size_t cut = std::string::npos;
    for (const auto& s : stops) cut = std::min(cut, text.find(s));
    const std::string expected = cut == std::string::npos ? text : text.substr(0, cut);

    StopMatcher m(stops);
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

}  // namespace
}  // namespace gannet::server
