#include "grammar/matcher.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "grammar/grammar.h"

namespace gannet::grammar {
namespace {

const char kJson[] = R"g(
root   ::= value
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws
array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws
string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [1-9] [0-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
)g";

const char kArithmetic[] = R"g(
root ::= expr
expr ::= term (("+" | "-") term)*
term ::= factor (("*" | "/") factor)*
factor ::= [0-9]+ | "(" expr ")" | "-" factor
)g";

Matcher Make(std::string_view text, const MatcherOptions& options = {}) {
  auto g = Grammar::Compile(text);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  auto m = Matcher::Create(*g, options);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

// Whole-string acceptance: every byte accepted and the root complete at the end.
bool Matches(std::string_view grammar, std::string_view input) {
  Matcher m = Make(grammar);
  return m.AcceptBytes(input) && m.IsComplete();
}

struct Case {
  const char* grammar;
  std::vector<std::string> accepted;
  std::vector<std::string> rejected;
};

TEST(MatcherTest, Corpus) {
  const std::vector<Case> cases = {
      {kJson,
       {R"g({"a": [1, 2.5e10, -3, true, null], "b": {"c": "d\n\u00e9"}})g", "[]", "\"\"", "0",
        "{\n  \"k\": \"v\"}", "\"h\xC3\xA9llo \xF0\x9F\x98\x80\""},
       {"{", R"g({"a" 1})g", "[1,]", "01", "\"\\q\"", "\"\x01\"", "tru", "[1 2]"}},
      {kArithmetic,
       {"1", "1+2*3", "(1+2)*3", "--4", "((((7))))", "10/2-3"},
       {"", "1+", "(1", "1)", "*2", "1++2"}},
      {R"g(root ::= "a"{3} "b"{2,} "c"{1,2} "d"{0,1} "e"?)g",
       {"aaabbc", "aaabbbbbbccde", "aaabbcd", "aaabbce"},
       {"aabbc", "aaabc", "aaabbccc", "aaabbcdd", "aaabbc e"}},
      {R"g(root ::= ("ab" | "c"){2,3})g",
       {"abab", "abcab", "cc", "ccc"},
       {"c", "abababab", "cab c"}},
      {R"g(root ::= ("x" ("y" ("z" | "w")+)*)?)g",
       {"", "x", "xyz", "xyzwyzz"},
       {"y", "xy", "xyzy"}},
      {R"g(root ::= [α-ω]+ " " [^a-z]* "." [\u4e00-\u9fff])g",
       {"αβγ 123.中", "ω .\xE6\x96\x87", "ω ABC\xC3\xA9.中"},
       {"abc .中", "α a.中", "α .a", "α .\xE4\xB8"}},
      {R"g(root ::= "\x41\u00e9\U0001F600\t\n\r\\\"")g",
       {"A\xC3\xA9\xF0\x9F\x98\x80\t\n\r\\\""},
       {"A\xC3\xA9"}},
      {R"g(root ::= "(" root ")" | "")g", {"", "()", "((()))"}, {"(", "())", ")("}},
      {R"g(root ::= . . .)g", {"abc", "\xE4\xB8\xAD\n\x01"}, {"ab", "abcd"}},
  };
  for (const Case& c : cases) {
    for (const std::string& s : c.accepted) EXPECT_TRUE(Matches(c.grammar, s)) << c.grammar << s;
    for (const std::string& s : c.rejected) EXPECT_FALSE(Matches(c.grammar, s)) << c.grammar << s;
  }
}

TEST(MatcherTest, SplitUtf8AcrossCalls) {
  Matcher m = Make(R"g(root ::= "é" [\U0001F600-\U0001F64F])g");
  EXPECT_TRUE(m.AcceptBytes("\xC3"));
  EXPECT_FALSE(m.IsComplete());
  EXPECT_FALSE(m.AcceptBytes("\xA8"));  // è: a different code point
  EXPECT_TRUE(m.AcceptBytes("\xA9\xF0\x9F"));
  EXPECT_FALSE(m.AcceptBytes("\x9A"));  // F0 9F 9A: U+1F680.., out of the class
  EXPECT_TRUE(m.AcceptBytes("\x98"));
  EXPECT_FALSE(m.IsComplete());
  EXPECT_TRUE(m.AcceptBytes("\x80"));
  EXPECT_TRUE(m.IsComplete());
}

TEST(MatcherTest, StrictUtf8) {
  Matcher m = Make("root ::= .*");
  EXPECT_FALSE(m.AcceptBytes("\xC0\x80"));          // overlong
  EXPECT_FALSE(m.AcceptBytes("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(m.AcceptBytes("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(m.AcceptBytes("\x80"));
  EXPECT_FALSE(m.AcceptBytes("\xE0\x9F"));
  EXPECT_TRUE(m.AcceptBytes("\xF4\x8F\xBF\xBF"));
  EXPECT_TRUE(m.IsComplete());
}

TEST(MatcherTest, RejectionLeavesStateUnchangedAndCopiesAreIndependent) {
  Matcher m = Make(kArithmetic);
  ASSERT_TRUE(m.AcceptBytes("1+"));
  EXPECT_FALSE(m.AcceptBytes("2)"));
  Matcher copy = m.Clone();
  EXPECT_TRUE(m.AcceptBytes("2"));
  EXPECT_TRUE(m.IsComplete());
  EXPECT_FALSE(copy.IsComplete());
  EXPECT_TRUE(copy.AcceptBytes("(3)"));
  EXPECT_TRUE(copy.IsComplete());
  EXPECT_TRUE(m.AcceptBytes("*4"));
}

TEST(MatcherTest, LongInputsKeepTheArenaSmall) {
  Matcher m = Make(kJson);
  ASSERT_TRUE(m.AcceptBytes("["));
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(m.AcceptBytes("[1, \"ab\"], ")) << i;
  ASSERT_TRUE(m.AcceptBytes("[]]"));
  EXPECT_TRUE(m.IsComplete());
  Matcher nest = Make(R"g(root ::= "(" root ")" | "")g");
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(nest.AcceptBytes("("));
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(nest.AcceptBytes(")"));
  EXPECT_TRUE(nest.IsComplete());
}

TEST(MatcherTest, AmbiguityIsCappedAndTested) {
  // Every split of a run of a's into 1- and 2-letter words: with nesting, distinct stacks grow.
  const char* ambiguous = R"g(root ::= x
x ::= "a" x "b" | "a" "a" x "b" "b" | "a" x "b" "b" | "")g";
  MatcherOptions small{.max_stacks = 8};
  Matcher m = Make(ambiguous, small);
  bool capped = false;
  for (int i = 0; i < 64 && !capped; ++i) {
    if (!m.AcceptBytes("a")) {
      EXPECT_TRUE(m.limit_exceeded());
      capped = true;
    }
    EXPECT_LE(m.num_stacks(), small.max_stacks);
  }
  EXPECT_TRUE(capped);
  // The grammar itself was never violated: with the default cap the same input is accepted.
  Matcher big = Make(ambiguous);
  EXPECT_TRUE(big.AcceptBytes(std::string(5, 'a')));
  EXPECT_FALSE(big.limit_exceeded());
  EXPECT_FALSE(big.AcceptBytes("c"));
  EXPECT_FALSE(big.limit_exceeded());

  // A start state over the cap is an error at Create().
  std::string wide = "root ::= \"a\"";
  for (int i = 0; i < 2000; ++i) wide += " | \"b" + std::to_string(i) + "\"";
  auto g = Grammar::Compile(wide);
  ASSERT_TRUE(g.ok());
  auto created = Matcher::Create(*g);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kResourceExhausted);
}

TEST(MatcherTest, DepthLimit) {
  Matcher m = Make(R"g(root ::= "(" root ")" | "")g", {.max_stack_depth = 100});
  bool capped = false;
  for (int i = 0; i < 200 && !capped; ++i) capped = !m.AcceptBytes("(");
  EXPECT_TRUE(capped);
  EXPECT_TRUE(m.limit_exceeded());
}

}  // namespace
}  // namespace gannet::grammar
