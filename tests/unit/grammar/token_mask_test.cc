#include "grammar/token_mask.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/mask_cache.h"
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

// Self-loops (string bodies) under several stack contexts at once, so that what may follow a
// quote depends on the stacks below; and a body whose classes overlap, so that several signatures
// loop.
const char kContexts[] = R"g(
root ::= item ("," item)* | "<" inner ">"
item ::= "a" str "x" | "b" str "y" | "[" str "]" | "{" word "}"
inner ::= str | str str | str "," inner
str ::= "\"" [^"\\]* "\""
word ::= ([a-m] | [h-z ] | "é" | [\u4e00-\u9fff])*
)g";

// A random vocabulary over the grammars' alphabet: 1 to max_bytes byte tokens, every single byte,
// UTF-8 characters split into pieces, an empty control token and an end-of-generation token.
std::vector<std::string> RandomVocabulary(std::mt19937* rng, int32_t* eog, int max_bytes = 4,
                                          size_t size = 200) {
  const std::vector<std::string> units = {
      "{",    "}",    "[",    "]",    "\"",   ",",    ":",    " ",    "\n",   "\\",
      "0",    "1",    "9",    ".",    "-",    "+",    "e",    "a",    "b",    "c",
      "d",    "t",    "r",    "u",    "n",    "l",    "f",    "s",    "(",    ")",
      "*",    "/",    "\xC3", "\xA9", "\xCE", "\xB1", "\xE4", "\xB8", "\xAD", "\xE6",
      "\x96", "\x87", "\xF0", "\x9F", "\x98", "\x80", "é",    "α",    "ω",    "中",
      "😀",    "x",    "y",    "<",    ">",    "h",    "m",    "z"};
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
  std::uniform_int_distribution<int> len(1, max_bytes);
  while (vocab.size() < size) {
    std::string t;
    int n = len(*rng);
    while (static_cast<int>(t.size()) < n) t += units[pick(*rng)];
    if (static_cast<int>(t.size()) > max_bytes) t.resize(max_bytes);
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
        ASSERT_TRUE(v.FillNextTokenMask(m, mask));
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

// One MaskCache per grammar, shared by every walk (many matchers), each walk run twice: the second
// pass finds the cache warm. Every mask must equal the brute force, bit for bit; once with the
// default options, once keeping the whole mask of every state the exact walk fills.
class CachedMaskTest : public ::testing::TestWithParam<size_t> {};

TEST_P(CachedMaskTest, CachedMaskEqualsBruteForceOnRandomWalks) {
  std::mt19937 rng(4321);
  int32_t eog;
  std::vector<std::string> tokens = RandomVocabulary(&rng, &eog, /*max_bytes=*/8, /*size=*/400);
  auto vocab = TokenVocabulary::Create(tokens, std::vector<int32_t>{eog});
  ASSERT_TRUE(vocab.ok()) << vocab.status().ToString();
  const TokenVocabulary& v = **vocab;
  std::vector<uint32_t> mask(v.mask_words());
  struct Setup {
    const char* text;
    MatcherOptions options;
  };
  size_t fast = 0, exact = 0, checks = 0, limited = 0, whole = 0;
  for (const Setup& setup :
       {Setup{kJson, {}}, Setup{kArithmetic, {}}, Setup{kUnicode, {}}, Setup{kAmbiguous, {}},
        Setup{kAmbiguous, {.max_stacks = 8}}, Setup{kContexts, {}},
        Setup{kContexts, {.max_stacks = 5}}, Setup{kContexts, {.max_stack_depth = 3}}}) {
    // The capped setups make the cap refuse some tokens (the stacks of three strings at once).
    auto g = Grammar::Compile(setup.text);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    MaskCache cache(*vocab, *g, {.min_state_steps = GetParam()});
    for (int pass = 0; pass < 2; ++pass) {
      std::mt19937 walk_rng(99);  // the same walks in both passes
      for (int walk = 0; walk < 20; ++walk) {
        auto created = Matcher::Create(*g, setup.options);
        ASSERT_TRUE(created.ok());
        Matcher m = std::move(created).value();
        for (int step = 0; step < 40; ++step, ++checks) {
          ASSERT_TRUE(cache.FillNextTokenMask(m, mask));
          std::vector<bool> expected = BruteForce(v, m);
          std::vector<int32_t> allowed;
          for (size_t i = 0; i < v.size(); ++i) {
            bool bit = (mask[i >> 5] >> (i & 31)) & 1;
            ASSERT_EQ(bit, expected[i]) << "token " << i << " '" << tokens[i] << "' step " << step
                                        << " pass " << pass << " grammar " << setup.text;
            if (bit) allowed.push_back(static_cast<int32_t>(i));
          }
          for (size_t i = 0; i < v.size(); ++i) {
            Matcher copy = m;
            if (!v.AcceptToken(&copy, static_cast<int32_t>(i)) && copy.limit_exceeded()) ++limited;
          }
          if (allowed.empty()) break;
          int32_t next =
              allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(walk_rng)];
          if (next == eog && allowed.size() > 1 && step < 30) next = allowed[0];
          ASSERT_TRUE(v.AcceptToken(&m, next));
          if (next == eog) break;
        }
      }
    }
    MaskCache::Stats st = cache.stats();
    fast += st.fast;
    exact += st.exact;
    whole += st.whole;
  }
  EXPECT_GT(checks, 1500u);
  EXPECT_GT(fast, 300u);   // the cached path is exercised ...
  EXPECT_GT(exact, 100u);  // ... and so is the fallback
  EXPECT_GT(limited, 0u);  // and tokens refused for a stack cap, not by the grammar
  if (GetParam() == 0) {
    EXPECT_GT(whole, 300u);  // and whole masks kept per state
  } else {
    EXPECT_EQ(whole, 0u);  // no walk over this small vocabulary is long enough to keep
  }
}

INSTANTIATE_TEST_SUITE_P(MinStateSteps, CachedMaskTest, ::testing::Values(size_t{4096}, 0));

// A state's kept mask is found by another matcher in the same state reached another way (other
// arena ids), and only in that state.
TEST(TokenMaskTest, StateMasksAreKeyedByContent) {
  auto g = Grammar::Compile(kJson);
  ASSERT_TRUE(g.ok());
  std::mt19937 rng(9);
  int32_t eog;
  std::vector<std::string> tokens = RandomVocabulary(&rng, &eog, 8, 400);
  auto vocab = TokenVocabulary::Create(tokens, std::vector<int32_t>{eog});
  ASSERT_TRUE(vocab.ok());
  MaskCache cache(*vocab, *g, {.min_state_steps = 0});
  std::vector<uint32_t> mask((*vocab)->mask_words()), exact((*vocab)->mask_words());
  // Inside an array after a comma, whatever came before and under another key: one state.
  const std::pair<const char*, size_t> texts[] = {
      {"{\"a\":[1,", 0}, {"{\"a\":[1,22,{},[3,[]],", 1}, {"{\"a\":[", 1}, {"{\"b\":[7,", 2}};
  for (const auto& [text, hits] : texts) {
    auto m = Matcher::Create(*g);
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(m->AcceptBytes(text)) << text;
    ASSERT_TRUE(cache.FillNextTokenMask(*m, mask));
    ASSERT_TRUE((*vocab)->FillNextTokenMask(*m, exact));
    EXPECT_EQ(mask, exact) << text;
    EXPECT_EQ(cache.stats().whole, hits) << text;
  }
  EXPECT_GT(cache.stats().states, 0u);
}

// A cache with no room takes the exact walk every time, and still agrees.
TEST(TokenMaskTest, FullCacheFallsBackToTheExactWalk) {
  auto g = Grammar::Compile(kJson);
  ASSERT_TRUE(g.ok());
  std::mt19937 rng(5);
  int32_t eog;
  std::vector<std::string> tokens = RandomVocabulary(&rng, &eog, 8, 300);
  auto vocab = TokenVocabulary::Create(tokens, std::vector<int32_t>{eog});
  ASSERT_TRUE(vocab.ok());
  MaskCache cache(*vocab, *g, {.max_bytes = 1});
  auto m = Matcher::Create(*g);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->AcceptBytes("{\"ab"));
  std::vector<uint32_t> cached((*vocab)->mask_words()), exact((*vocab)->mask_words());
  ASSERT_TRUE(cache.FillNextTokenMask(*m, cached));
  ASSERT_TRUE((*vocab)->FillNextTokenMask(*m, exact));
  EXPECT_EQ(cached, exact);
  EXPECT_EQ(cache.stats().fast, 0u);
  EXPECT_EQ(cache.stats().entries, 0u);
}

// Threads share one cache, cold at first, each on its own walks; every mask must equal the exact
// walk's.
TEST(TokenMaskTest, CacheSharedAcrossThreads) {
  std::mt19937 rng(77);
  int32_t eog;
  std::vector<std::string> tokens = RandomVocabulary(&rng, &eog, 8, 400);
  auto vocab = TokenVocabulary::Create(tokens, std::vector<int32_t>{eog});
  ASSERT_TRUE(vocab.ok());
  for (const char* text : {kJson, kContexts}) {
    auto g = Grammar::Compile(text);
    ASSERT_TRUE(g.ok());
    MaskCache cache(*vocab, *g);
    std::atomic<int> mismatches{0}, masks{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        const TokenVocabulary& v = **vocab;
        std::mt19937 walk_rng(1000 + t);
        std::vector<uint32_t> cached(v.mask_words()), exact(v.mask_words());
        for (int walk = 0; walk < 10; ++walk) {
          auto m = Matcher::Create(*g);
          if (!m.ok()) return;
          for (int step = 0; step < 30; ++step) {
            ASSERT_TRUE(cache.FillNextTokenMask(*m, cached));
            ASSERT_TRUE(v.FillNextTokenMask(*m, exact));
            ++masks;
            if (cached != exact) ++mismatches;
            std::vector<int32_t> allowed;
            for (size_t i = 0; i < v.size(); ++i) {
              if ((exact[i >> 5] >> (i & 31)) & 1) allowed.push_back(static_cast<int32_t>(i));
            }
            if (allowed.empty()) break;
            int32_t next =
                allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(walk_rng)];
            if (next == eog) break;
            v.AcceptToken(&*m, next);
          }
        }
      });
    }
    for (std::thread& th : threads) th.join();
    EXPECT_EQ(mismatches.load(), 0);
    EXPECT_GT(masks.load(), 100);
    EXPECT_GT(cache.stats().fast, 0u);
  }
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
  ASSERT_TRUE((*vocab)->FillNextTokenMask(*m, mask));
  EXPECT_EQ(mask[0], 0b0110001u);  // a, ab, abc
  ASSERT_TRUE((*vocab)->AcceptToken(&*m, 4));
  ASSERT_TRUE((*vocab)->FillNextTokenMask(*m, mask));
  EXPECT_EQ(mask[0], 0b1000100u);  // c, <eos>
  EXPECT_FALSE((*vocab)->AcceptToken(&*m, 3));
  EXPECT_FALSE((*vocab)->AcceptToken(&*m, 99));
}

// A control token (no bytes) is allowed exactly where the grammar names it as <[id]>, and its
// text is no substitute: "[T]" spelled in bytes is not the token.
TEST(TokenMaskTest, TokenReferencesAllowOnlyThatControlToken) {
  auto g = Grammar::Compile(R"g(root ::= <[4]> "[" [^\]]* "]" <[5]>?)g");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  //                                   0    1    2     3       4   5   6
  auto vocab =
      TokenVocabulary::Create({"[", "]", "ab", "[T]", "", "", "<eos>"}, std::vector<int32_t>{6});
  ASSERT_TRUE(vocab.ok());
  MaskCache cache(*vocab, *g);
  auto m = Matcher::Create(*g);
  ASSERT_TRUE(m.ok());
  std::vector<uint32_t> mask(1), cached(1);
  auto check = [&](uint32_t want) {
    ASSERT_TRUE((*vocab)->FillNextTokenMask(*m, mask));
    ASSERT_TRUE(cache.FillNextTokenMask(*m, cached));
    EXPECT_EQ(mask[0], want);
    EXPECT_EQ(cached[0], want);
    const std::vector<bool> brute = BruteForce(**vocab, *m);
    for (size_t i = 0; i < brute.size(); ++i) EXPECT_EQ(brute[i], ((want >> i) & 1) != 0) << i;
  };
  check(0b0010000u);  // only the token 4
  EXPECT_FALSE((*vocab)->AcceptToken(&*m, 3));
  EXPECT_FALSE((*vocab)->AcceptToken(&*m, 5));
  ASSERT_TRUE((*vocab)->AcceptToken(&*m, 4));
  check(0b0001001u);  // "[", "[T]"
  ASSERT_TRUE((*vocab)->AcceptToken(&*m, 0));
  check(0b0001111u);  // every text token; never a symbol inside [^\]]*
  ASSERT_TRUE((*vocab)->AcceptToken(&*m, 2));
  check(0b0001111u);
  ASSERT_TRUE((*vocab)->AcceptToken(&*m, 1));
  check(0b1100000u);  // the token 5 or the end
  ASSERT_TRUE((*vocab)->AcceptToken(&*m, 5));
  check(0b1000000u);
}

TEST(TokenMaskTest, BadEogIdIsAnError) {
  EXPECT_FALSE(TokenVocabulary::Create({"a"}, std::vector<int32_t>{1}).ok());
}

// An ambiguous grammar keeps one stack per alternative alive; a mask then costs (trie nodes x
// stacks). Past MatcherOptions::max_mask_work both mask paths give up (false) instead of running
// on; with room they agree with the brute force, and the work they report grows with the stacks.
TEST(TokenMaskTest, MaskWorkIsBoundedByTheBudget) {
  std::string gbnf = "root ::= \"q\" (";
  std::string rules;
  const int kAlternatives = 40;
  for (int i = 0; i < kAlternatives; ++i) {
    gbnf += (i > 0 ? " | r" : "r") + std::to_string(i);
    // Each alternative loops on every letter but its own and ends on it: all stay open together.
    const char c = static_cast<char>('a' + i % 26);
    rules +=
        "r" + std::to_string(i) + " ::= [^" + c + "]* \"" + c + std::string(i / 26 + 1, c) + "\"\n";
  }
  gbnf += ")\n" + rules;
  auto g = Grammar::Compile(gbnf);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  std::mt19937 rng(3);
  int32_t eog = -1;
  std::vector<std::string> tokens = RandomVocabulary(&rng, &eog, 6, 400);
  auto vocab = TokenVocabulary::Create(tokens, std::vector<int32_t>{eog});
  ASSERT_TRUE(vocab.ok());
  const auto mask_work = [&](uint64_t budget, bool* complete, bool cached) {
    auto m = Matcher::Create(*g, {.max_mask_work = budget});
    EXPECT_TRUE(m.ok());
    EXPECT_TRUE(m->AcceptBytes("q"));  // the start state is one stack; after "q", 80
    std::vector<uint32_t> mask((*vocab)->mask_words());
    MaskCache cache(*vocab, *g);
    *complete = cached ? cache.FillNextTokenMask(*m, mask) : (*vocab)->FillNextTokenMask(*m, mask);
    if (*complete) {
      for (size_t t = 0; t < tokens.size(); ++t) {
        Matcher copy = *m;
        const bool bit = (mask[t / 32] >> (t % 32)) & 1u;
        EXPECT_EQ(bit, (*vocab)->AcceptToken(&copy, static_cast<int32_t>(t))) << t;
      }
    }
    return mask;
  };
  for (bool cached : {false, true}) {
    bool complete = false;
    mask_work(uint64_t{1} << 40, &complete, cached);
    EXPECT_TRUE(complete);
    mask_work(500, &complete, cached);
    EXPECT_FALSE(complete) << "cached " << cached;
  }
  // The start state (one stack) fits a budget the state after "q" does not.
  auto m = Matcher::Create(*g, {.max_mask_work = 500});
  ASSERT_TRUE(m.ok());
  std::vector<uint32_t> mask((*vocab)->mask_words());
  EXPECT_TRUE((*vocab)->FillNextTokenMask(*m, mask));
}

}  // namespace
}  // namespace gannet::grammar
