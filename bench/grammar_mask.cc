// Token masks on a synthetic 32k-token vocabulary for a JSON grammar, at a few matcher states: the
// exact trie walk (TokenVocabulary::FillNextTokenMask) and MaskCache::FillNextTokenMask, cold (the
// first mask with a fresh cache, which builds its entry) and warm, against the brute force both
// must equal (copy the matcher, AcceptBytes per token), measured in the same run; the cached mask
// is checked equal to the exact one. Reproduce: build/bin/grammar_mask [n_vocab] [iterations]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/mask_cache.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"

namespace {

void Check(bool complete) {
  if (complete) return;
  std::fprintf(stderr, "grammar_mask: a mask exceeded the matcher's work budget\n");
  std::exit(1);
}

using gannet::grammar::Grammar;
using gannet::grammar::MaskCache;
using gannet::grammar::Matcher;
using gannet::grammar::TokenVocabulary;

const char kJson[] = R"g(
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,3})? ws
ws ::= | " " | "\n" [ \t]{0,20}
)g";

// Word-like tokens (most with a leading space, as BPE vocabularies have), punctuation runs and
// digits, 1 to 12 bytes, plus a few multi-byte UTF-8 pieces.
std::vector<std::string> SyntheticVocabulary(size_t n) {
  std::mt19937 rng(7);
  const std::string letters = "etaoinshrdlucmfwypvbgkqjxz";
  const std::string punct = "{}[]\":,.-+0123456789 \n\\";
  std::vector<std::string> v;
  for (int b = 0; b < 256; ++b) v.push_back(std::string(1, static_cast<char>(b)));
  std::uniform_int_distribution<int> len(1, 12), kind(0, 9);
  while (v.size() < n - 1) {
    std::string t;
    int k = kind(rng), l = len(rng);
    if (k < 7) {
      if (k < 5) t = " ";
      for (int i = 0; i < l; ++i) t += letters[rng() % letters.size()];
    } else if (k < 9) {
      for (int i = 0; i < (l + 2) / 3; ++i) t += punct[rng() % punct.size()];
    } else {
      t = (rng() % 2) ? "\xC3\xA9" : "\xE4\xB8";
    }
    v.push_back(t);
  }
  v.push_back("</s>");
  return v;
}

template <typename F>
double MicrosPerCall(int iterations, F f) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) f();
  std::chrono::duration<double, std::micro> d = std::chrono::steady_clock::now() - start;
  return d.count() / iterations;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n_vocab = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 32000;
  int iterations = argc > 2 ? std::atoi(argv[2]) : 50;
  std::vector<std::string> tokens = SyntheticVocabulary(n_vocab);
  std::vector<int32_t> eog = {static_cast<int32_t>(tokens.size() - 1)};
  auto vocab = TokenVocabulary::Create(tokens, eog);
  auto grammar = Grammar::Compile(kJson);
  if (!vocab.ok() || !grammar.ok()) {
    std::fprintf(stderr, "setup failed\n");
    return 1;
  }
  std::printf("grammar_mask: n_vocab=%zu iterations=%d (build/bin/grammar_mask %zu %d)\n",
              tokens.size(), iterations, tokens.size(), iterations);
  {
    double build = MicrosPerCall(1, [&] { MaskCache cache(*vocab, *grammar); });
    std::printf("MaskCache construction (per grammar): %.1f us\n", build);
  }
  std::printf("%-20s %10s %10s %10s %12s %9s %9s %8s %9s\n", "state", "exact us", "cold us",
              "warm us", "brute us", "exact/warm", "brute/warm", "allowed", "cache KiB");
  const std::pair<const char*, const char*> states[] = {{"start", ""},
                                                        {"after '{'", "{"},
                                                        {"inside a string", "{\"ke"},
                                                        {"after ':'", "{\"k\": "},
                                                        {"in a value string", "{\"k\": \"v"},
                                                        {"in a number", "{\"k\": [12"}};
  std::vector<uint32_t> mask((*vocab)->mask_words()), cached((*vocab)->mask_words());
  for (const auto& [name, prefix] : states) {
    auto m = Matcher::Create(*grammar);
    if (!m.ok() || !m->AcceptBytes(prefix)) return 1;
    double trie = MicrosPerCall(iterations, [&] { Check((*vocab)->FillNextTokenMask(*m, mask)); });
    int allowed = 0;
    for (uint32_t w : mask) allowed += __builtin_popcount(w);
    MaskCache cache(*vocab, *grammar);  // fresh: the first mask is cold
    double cold = MicrosPerCall(1, [&] { Check(cache.FillNextTokenMask(*m, cached)); });
    double warm = MicrosPerCall(iterations, [&] { Check(cache.FillNextTokenMask(*m, cached)); });
    if (cached != mask) {
      std::fprintf(stderr, "%s: the cached mask differs from the exact walk's\n", name);
      return 1;
    }
    double brute = MicrosPerCall(std::max(1, iterations / 10), [&] {
      for (size_t i = 0; i < tokens.size(); ++i) {
        Matcher copy = *m;
        (*vocab)->AcceptToken(&copy, static_cast<int32_t>(i));
      }
    });
    std::printf("%-20s %10.1f %10.1f %10.1f %12.1f %9.1fx %9.1fx %8d %9.1f%s\n", name, trie, cold,
                warm, brute, trie / warm, brute / warm, allowed, cache.stats().bytes / 1024.0,
                cache.stats().fast > 0 ? "" : "  (exact walk: no self-loop)");
  }
  return 0;
}
