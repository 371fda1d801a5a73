// libFuzzer target: the grammars requests bring, GBNF text (the `grammar` field, `--grammar-file`)
// and JSON schemas (response_format, tools), compiled and then matched. The first input byte picks
// GBNF (even) or JSON schema (odd); the text runs up to the first NUL byte, and what follows is
// output to match. Checks: a compiled grammar's matcher accepts the output byte by byte exactly as
// it accepts it whole; the token mask of a small fixed vocabulary, exact and through MaskCache, is
// equal to the brute force (AcceptToken on a copy per token) whenever it completes within its
// work budget; and every call returns (no crash, no unbounded work: limits are small here).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/mask_cache.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"

namespace {

using gannet::grammar::Grammar;
using gannet::grammar::Matcher;
using gannet::grammar::TokenVocabulary;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// JSON punctuation, words, digits, whitespace runs, multi-byte characters whole and split, an
// empty control token and an end-of-generation token (the last).
const TokenVocabulary& Vocabulary() {
  static const std::shared_ptr<const TokenVocabulary> vocab = [] {
    std::vector<std::string> t = {
        "{",    "}",     "[",    "]",    ":",        ",",  "\"",  "\\",    " ",    "\n",
        "  ",   "\": ",  "\",",  "{\"",  "a",        "b",  "x",   "ab",    "abc",  "name",
        "true", "false", "null", "0",    "1",        "12", "-",   ".",     "e",    "é",
        "\xC3", "\xA9",  "中",   "\xE4", "\xB8\xAD", "😀",  "\\n", "\\u00", "aé",   "}\n",
        "\"}",  "1.5",   "+",    "*",    "(",        ")",  "|",   "",      "<eos>"};
    const int32_t eog = static_cast<int32_t>(t.size()) - 1;
    auto v = TokenVocabulary::Create(std::move(t), std::vector<int32_t>{eog});
    Check(v.ok());
    return *v;
  }();
  return *vocab;
}

void CheckMask(const std::shared_ptr<const Grammar>& g, const Matcher& m) {
  const TokenVocabulary& v = Vocabulary();
  std::vector<uint32_t> exact(v.mask_words()), cached(v.mask_words());
  const bool exact_done = v.FillNextTokenMask(m, exact);
  gannet::grammar::MaskCache cache(
      std::shared_ptr<const TokenVocabulary>(std::shared_ptr<const TokenVocabulary>{}, &v), g,
      {.max_bytes = size_t{1} << 20});
  const bool cached_done = cache.FillNextTokenMask(m, cached);
  if (exact_done && cached_done) Check(exact == cached);
  if (!exact_done) return;
  for (size_t t = 0; t < v.size(); ++t) {
    Matcher copy = m;
    const bool bit = (exact[t / 32] >> (t % 32)) & 1u;
    Check(bit == v.AcceptToken(&copy, static_cast<int32_t>(t)));
  }
}

void Match(const std::shared_ptr<const Grammar>& g, std::string_view output) {
  const gannet::grammar::MatcherOptions small{.max_stacks = 64,
                                              .max_stack_depth = 256,
                                              .max_expansion_steps = 4096,
                                              .max_mask_work = 200000};
  gannet::Result<Matcher> whole = Matcher::Create(g, small);
  if (!whole.ok()) return;
  Matcher bytewise = *whole;
  CheckMask(g, *whole);
  const bool accepted = whole->AcceptBytes(output);
  bool all = true;
  for (size_t i = 0; i < output.size() && all; ++i) all = bytewise.AcceptBytes(output.substr(i, 1));
  // Limits can stop a long input either way; without them, the two must agree.
  if (!whole->limit_exceeded() && !bytewise.limit_exceeded()) Check(accepted == all);
  if (accepted && all) {
    Check(whole->IsComplete() == bytewise.IsComplete());
    CheckMask(g, *whole);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nul = rest.find('\0');
  const std::string_view text = rest.substr(0, nul);
  const std::string_view output = nul == std::string_view::npos ? "" : rest.substr(nul + 1);
  const gannet::grammar::GbnfLimits limits{.max_text_bytes = 8192,
                                           .max_rules = 512,
                                           .max_symbols = 8192,
                                           .max_nesting = 16,
                                           .max_repetition = 64};
  gannet::Result<std::shared_ptr<const Grammar>> g = gannet::Status::InvalidArgument("");
  if (data[0] % 2 == 0) {
    g = Grammar::Compile(text, limits);
  } else {
    nlohmann::ordered_json schema = nlohmann::ordered_json::parse(text, nullptr, false);
    if (schema.is_discarded()) return 0;
    g = gannet::grammar::CompileJsonSchema(schema);
  }
  if (!g.ok()) return 0;
  Match(*g, output);
  return 0;
}
