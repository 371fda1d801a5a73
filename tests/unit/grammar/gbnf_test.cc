#include "grammar/gbnf.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "grammar/grammar.h"

namespace gannet::grammar {
namespace {

std::string ErrorOf(std::string_view text) {
  auto g = Grammar::Compile(text);
  return g.ok() ? std::string("OK") : g.status().message();
}

TEST(GbnfTest, ParsesRulesAndLowersRepetitions) {
  auto p = ParseGbnf("root ::= a+ b? (\"x\" | [0-9]){2,3} .*\na ::= \"a\"\nb ::= [^b]");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->rules[p->root].name, "root");
  EXPECT_GT(p->rules.size(), 3u);  // generated rules for groups and repetitions
}

TEST(GbnfTest, RuleMayContinueOnALineStartingWithBar) {
  EXPECT_EQ(ErrorOf("root ::= \"a\"\n  | \"b\"  # comment\nx ::= \"c\""), "OK");
}

TEST(GbnfTest, CharClasses) {
  auto p = ParseGbnf(R"(root ::= [a-cx\]\-] [^"\\] [\u00e9-\U0001F600])");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const CharClass& c0 = p->classes[p->rules[p->root].alternatives[0][0].index];
  EXPECT_TRUE(c0.Contains('b'));
  EXPECT_TRUE(c0.Contains(']'));
  EXPECT_TRUE(c0.Contains('-'));
  EXPECT_FALSE(c0.Contains('d'));
  const CharClass& c1 = p->classes[p->rules[p->root].alternatives[0][1].index];
  EXPECT_FALSE(c1.Contains('"'));
  EXPECT_FALSE(c1.Contains('\\'));
  EXPECT_TRUE(c1.Contains('a'));
  EXPECT_TRUE(c1.Contains(0x1F600));
  EXPECT_TRUE(c1.Intersects(0x80, 0x7FF));
  EXPECT_FALSE((CharClass{true, {{0, 0x10FFFF}}}).Intersects(5, 9));
}

TEST(GbnfTest, TokenReferencesAreSymbolsNoTextOrNegatedClassHolds) {
  auto p = ParseGbnf(R"(root ::= <[5]> [^a] . <[0]>)");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const auto& alt = p->rules[p->root].alternatives[0];
  const CharClass& tok5 = p->classes[alt[0].index];
  EXPECT_TRUE(tok5.Contains(kTokenSymbolBase + 5));
  EXPECT_FALSE(tok5.Contains(kTokenSymbolBase + 4));
  EXPECT_FALSE(tok5.Contains('5'));
  for (size_t i : {1, 2}) {
    const CharClass& neg = p->classes[alt[i].index];
    EXPECT_TRUE(neg.Contains(0x10FFFF));
    EXPECT_FALSE(neg.Contains(kTokenSymbolBase + 5));
    EXPECT_FALSE(neg.Intersects(kTokenSymbolBase, kTokenSymbolBase + 100));
    EXPECT_TRUE(neg.Intersects(0x10FFFF, kTokenSymbolBase + 100));
  }
  EXPECT_TRUE(p->classes[alt[3].index].Contains(kTokenSymbolBase));
  EXPECT_EQ(ErrorOf("root ::= <[x]>"),
            "grammar: line 1, column 10: token reference: expected <[ID]> with a decimal ID");
  EXPECT_EQ(ErrorOf("root ::= <[12"),
            "grammar: line 1, column 10: token reference: expected <[ID]> with a decimal ID");
  EXPECT_EQ(ErrorOf("root ::= <[99999999999]>"),
            "grammar: line 1, column 10: token reference: the id is larger than 16777215");
  EXPECT_EQ(ErrorOf("root ::= <a>"),
            "grammar: line 1, column 10: expected '<[' (a token reference <[ID]>)");
}

TEST(GbnfTest, ErrorsNameLineAndColumn) {
  EXPECT_EQ(ErrorOf("root ::= a\n"), "grammar: line 1, column 10: undefined rule 'a'");
  EXPECT_EQ(ErrorOf("x ::= \"a\""),
            "grammar: line 1, column 1: the grammar has no 'root' rule (the start rule)");
  EXPECT_EQ(ErrorOf("root ::= (\"a\" | \"b\"\n"),
            "grammar: line 1, column 10: unbalanced '(': no ')'");
  EXPECT_EQ(ErrorOf("root ::= \"a\")"), "grammar: line 1, column 13: unbalanced ')'");
  EXPECT_EQ(ErrorOf("root ::= \"a\"\n\nx ::= \"\\q\""),
            "grammar: line 3, column 8: bad escape '\\q'");
  EXPECT_EQ(ErrorOf("root ::= \"\\x4\""),
            "grammar: line 1, column 11: bad escape: '\\x' needs 2 hex digits");
  EXPECT_EQ(ErrorOf("root ::= \"\\uD800\""),
            "grammar: line 1, column 11: bad escape: not a Unicode scalar value");
  EXPECT_EQ(ErrorOf("root ::= \"a\"{3,2}"),
            "grammar: line 1, column 13: bad repetition: {m,n} with m > n");
  EXPECT_EQ(ErrorOf("root ::= \"a\"{x}"),
            "grammar: line 1, column 14: bad repetition: expected a number");
  EXPECT_EQ(ErrorOf("root ::= * \"a\""),
            "grammar: line 1, column 10: repetition operator with nothing before it");
  EXPECT_EQ(ErrorOf("root ::= [z-a]"), "grammar: line 1, column 11: character range is reversed");
  EXPECT_EQ(ErrorOf("root ::= \"a\"\nroot ::= \"b\""),
            "grammar: line 2, column 1: rule 'root' is defined twice");
  EXPECT_EQ(ErrorOf("root ::= \"abc"), "grammar: line 1, column 10: unterminated string");
  EXPECT_EQ(ErrorOf("root ::= [abc"), "grammar: line 1, column 10: unterminated character class");
  EXPECT_EQ(ErrorOf("root : \"a\""), "grammar: line 1, column 6: expected '::='");
}

TEST(GbnfTest, LeftRecursionIsRejectedWithTheCycle) {
  EXPECT_NE(ErrorOf("root ::= root \"a\" | \"a\"").find("left recursion (root -> root)"),
            std::string::npos);
  std::string e = ErrorOf("root ::= expr\nexpr ::= term | expr \"+\" term\nterm ::= [0-9]");
  EXPECT_NE(e.find("left recursion"), std::string::npos) << e;
  // Behind a prefix that can match "": still left recursion.
  e = ErrorOf("root ::= ws a\na ::= [x]? ws root | \"b\"\nws ::= \" \"*");
  EXPECT_NE(e.find("left recursion"), std::string::npos) << e;
  e = ErrorOf("root ::= a\na ::= b\nb ::= a");
  EXPECT_NE(e.find("left recursion"), std::string::npos) << e;
  EXPECT_EQ(ErrorOf("root ::= \"(\" root \")\" | \"\""), "OK");  // consumes before recursing
}

TEST(GbnfTest, HostileGrammarsAreAnsweredQuickly) {
  auto start = std::chrono::steady_clock::now();
  std::string deep = "root ::= " + std::string(100000, '(') + "\"a\"" + std::string(100000, ')');
  auto r = Grammar::Compile(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("nest deeper"), std::string::npos);

  r = Grammar::Compile("root ::= \"x\"{1000000}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("repetition bound"), std::string::npos);
  r = Grammar::Compile("root ::= \"x\"{99999999999999999999999}");
  ASSERT_FALSE(r.ok());

  // Nested repetitions multiply: each level is charged, the product is never built.
  r = Grammar::Compile("root ::= ((((\"x\"{0,9000}){0,9000}){0,9000}){0,9000})");
  EXPECT_TRUE(r.ok() || r.status().code() == StatusCode::kResourceExhausted);
  r = Grammar::Compile("root ::= (\"xyz\"{9000}){9000}");
  EXPECT_TRUE(r.ok() || r.status().code() == StatusCode::kResourceExhausted);
  std::string many = "root ::= \"a\"";
  for (int i = 0; i < 200000; ++i) many += " | \"ab\"";
  r = Grammar::Compile(many);
  ASSERT_FALSE(r.ok());  // over 1 MiB of text
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);

  std::string big(2 << 20, ' ');
  EXPECT_FALSE(Grammar::Compile(big).ok());
  std::string rules = "root ::= r0\n";
  for (int i = 0; i < 200; ++i) {
    rules += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + " \"a\"\n";
  }
  rules += "r200 ::= \"b\"";
  EXPECT_TRUE(Grammar::Compile(rules).ok());
  r = Grammar::Compile(rules, {.max_rules = 100});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rules"), std::string::npos) << r.status().message();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  EXPECT_LT(ms, 5000);
}

TEST(GbnfTest, InvalidUtf8InTheGrammarIsAnError) {
  EXPECT_NE(ErrorOf("root ::= \"\xC3\"").find("invalid UTF-8"), std::string::npos);
}

}  // namespace
}  // namespace gannet::grammar
