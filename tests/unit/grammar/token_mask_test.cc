#include "grammar/token_mask.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/matcher.h"

namespace gannet::grammar {
namespace {

const char kJson[] = R"g(
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,3})? ws
ws ::= | " " | "\n" [ \t]{0,20}
)g";

const char kArithmetic[] = R"g(
root ::= expr
expr ::= term (("+" | "-") term)*
term ::= factor (("*" | "/") factor)*
factor ::= [0-9]{1,3} | "(" expr ")" | "-" factor
)g";

const char kUnicode[] = R"g(
root ::= (word " "){1,6} "é"? [\u4e00-\u9fff]* "😀"
word ::= [a-eé]+ | [α-ω]{2} | "中文"
)g";

const char kAmbiguous[] = R"g(
root ::= (x | y)* "."
x ::= "ab" | "a" "b" | [a-c]
y ::= ("a" | "b")+ "c"
)g";

// A random vocabulary over the grammars' alphabet: 1-4 byte tokens, every single byte, UTF-8
// characters split into pieces, an empty control token and an end-of-generation token.
std::vector<std::string> RandomVocabulary(std::mt19937* rng, int32_t* eog) {
  const std::vector<std::string> units = {
      "{",    "}",    "[",    "]",    "\"",   ",",    ":",    " ",    "\n",   "\\",   "0",
      "1",    "9",    ".",    "-",    "+",    "e",    "a",    "b",    "c",    "d",    "t",
      "r",    "u",    "n",    "l",    "f",    "s",    "(",    ")",    "*",    "/",    "\xC3",
      "\xA9", "\xCE", "\xB1", "\xE4", "\xB8", "\xAD", "\xE6", "\x96", "\x87", "\xF0", "\x9F",
      "\x98", "\x80", "é",    "α",    "ω",    "中",   "😀"};
  std::vector<std::string> vocab;
  for (const std::string& u : units) {
    if (u.size() == 1) vocab.push_back(u);
  }
  vocab.push_back("\xE4\xB8");  // 中 split 2 + 1
  vocab.push_back("\xF0\x9F");  // 😀 split 2 + 2
  vocab.push_back("\x98\x80");
  vocab.push_back("é\xE4");  // a whole character and a lead byte
  vocab.push_back("");       // a control token: never allowed
  std::uniform_int_distribution<size_t> pick(0, units.size() - 1);
  std::uniform_int_distribution<int> len(1, 4);
  while (vocab.size() < 200) {
    std::string t;
    int n = len(*rng);
    while (static_cast<int>(t.size()) < n) t += units[pick(*rng)];
    if (t.size() > 4) t.resize(4);
    vocab.push_back(t);
  }
  *eog = static_cast<int32_t>(vocab.size());
  vocab.push_back("</s>");
  return vocab;
}

std::vector<bool> BruteForce(const TokenVocabulary& v, const Matcher& m) {
  std::vector<bool> allowed(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    Matcher copy = m;
    allowed[i] = v.AcceptToken(&copy, static_cast<int32_t>(i));
  }
  return allowed;
}

TEST(TokenMaskTest, MaskEqualsBruteForceOnRandomWalks) {
  std::mt19937 rng(1234);
  int32_t eog;
  std::vector<std::string> tokens = RandomVocabulary(&rng, &eog);
  auto vocab = TokenVocabulary::Create(tokens, std::vector<int32_t>{eog});
  ASSERT_TRUE(vocab.ok()) << vocab.status().ToString();
  const TokenVocabulary& v = **vocab;
  std::vector<uint32_t> mask(v.mask_words());
  int steps = 0, completions = 0, limited = 0;
  struct Setup {
    const char* text;
    MatcherOptions options;
  };
  // The last setup caps the stacks low, so that tokens are also refused for the limit: the mask
  // must agree with AcceptBytes there too.
  for (const Setup& setup : {Setup{kJson, {}}, Setup{kArithmetic, {}}, Setup{kUnicode, {}},
                             Setup{kAmbiguous, {}}, Setup{kAmbiguous, {.max_stacks = 8}}}) {
    auto g = Grammar::Compile(setup.text);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    for (int walk = 0; walk < 25; ++walk) {
      auto created = Matcher::Create(*g, setup.options);
      ASSERT_TRUE(created.ok());
      Matcher m = std::move(created).value();
      for (int step = 0; step < 60; ++step, ++steps) {
        v.FillNextTokenMask(m, mask);
        std::vector<bool> expected = BruteForce(v, m);
        std::vector<int32_t> allowed;
        for (size_t i = 0; i < v.size(); ++i) {
          bool bit = (mask[i >> 5] >> (i & 31)) & 1;
          ASSERT_EQ(bit, expected[i]) << "token " << i << " '" << tokens[i] << "' step " << step;
          if (bit) allowed.push_back(static_cast<int32_t>(i));
        }
        for (size_t i = 0; i < v.size(); ++i) {
          Matcher copy = m;
          if (!v.AcceptToken(&copy, static_cast<int32_t>(i)) && copy.limit_exceeded()) ++limited;
        }
        if (allowed.empty()) break;  // only under the low stack cap
        // Prefer continuing; end sometimes when allowed.
        int32_t next = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
        if (next == eog && allowed.size() > 1 && step < 40) next = allowed[0];
        ASSERT_TRUE(v.AcceptToken(&m, next));
        if (next == eog) {
          ++completions;
          break;
        }
      }
    }
  }
  EXPECT_GT(steps, 1000);
  EXPECT_GT(completions, 0);
  EXPECT_GT(limited, 0);
}

TEST(TokenMaskTest, EogOnlyAtCompletionAndEmptyTokensNever) {
  auto g = Grammar::Compile(R"g(root ::= "ab" "c"?)g");
  ASSERT_TRUE(g.ok());
  auto vocab =
      TokenVocabulary::Create({"a", "b", "c", "", "ab", "abc", "<eos>"}, std::vector<int32_t>{6});
  ASSERT_TRUE(vocab.ok());
  auto m = Matcher::Create(*g);
  ASSERT_TRUE(m.ok());
  std::vector<uint32_t> mask(1);
  (*vocab)->FillNextTokenMask(*m, mask);
  EXPECT_EQ(mask[0], 0b0110001u);  // a, ab, abc
  ASSERT_TRUE((*vocab)->AcceptToken(&*m, 4));
  (*vocab)->FillNextTokenMask(*m, mask);
  EXPECT_EQ(mask[0], 0b1000100u);  // c, <eos>
  EXPECT_FALSE((*vocab)->AcceptToken(&*m, 3));
  EXPECT_FALSE((*vocab)->AcceptToken(&*m, 99));
}

TEST(TokenMaskTest, BadEogIdIsAnError) {
  EXPECT_FALSE(TokenVocabulary::Create({"a"}, std::vector<int32_t>{1}).ok());
}

}  // namespace
}  // namespace gannet::grammar
