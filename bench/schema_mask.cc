// Token masks of a JSON Schema over a real model's vocabulary, along a text valid against it: the
// text is tokenized with the model's tokenizer and a matcher follows it token by token; at every
// token the mask is timed three ways, in the same run: the exact trie walk
// (TokenVocabulary::FillNextTokenMask), MaskCache cold (the first matcher through the text on a
// fresh cache: what the first request with this schema pays) and MaskCache warm (a second matcher
// through the same text on that cache: later requests), each checked equal to the exact walk, and
// each text token checked allowed. A last column repeats the cold pass with whole-state masks off
// (MaskCacheOptions::min_state_steps at its maximum), to show what they save.
// Reproduce: build/bin/schema_mask MODEL.gguf SCHEMA.json TEXT.json
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "grammar/json_schema.h"
#include "grammar/mask_cache.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"

namespace {

using gannet::grammar::Grammar;
using gannet::grammar::MaskCache;
using gannet::grammar::Matcher;
using gannet::grammar::TokenVocabulary;

struct Times {
  std::vector<double> us;
  void Print(const char* name) {
    std::vector<double> s = us;
    std::sort(s.begin(), s.end());
    double sum = 0;
    for (double x : s) sum += x;
    std::printf("%-34s %10.1f %10.1f %10.1f %10.1f\n", name, sum / s.size(), s[s.size() / 2],
                s[s.size() * 9 / 10], s.back());
  }
};

std::string ReadAll(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Follows `tokens` with a fresh matcher, timing each mask `fill` makes; false on a mismatch.
template <typename F>
bool Walk(const std::shared_ptr<const Grammar>& g, const TokenVocabulary& v,
          const std::vector<int32_t>& tokens, F fill, Times* t) {
  auto m = Matcher::Create(g);
  if (!m.ok()) return false;
  std::vector<uint32_t> mask(v.mask_words()), exact(v.mask_words());
  for (int32_t id : tokens) {
    auto start = std::chrono::steady_clock::now();
    const bool complete = fill(*m, std::span<uint32_t>(mask));
    std::chrono::duration<double, std::micro> d = std::chrono::steady_clock::now() - start;
    t->us.push_back(d.count());
    if (!complete || !v.FillNextTokenMask(*m, exact)) {
      std::fprintf(stderr, "a mask ran past the matcher's work budget\n");
      return false;
    }
    if (mask != exact || ((mask[id >> 5] >> (id & 31)) & 1u) == 0 || !v.AcceptToken(&*m, id)) {
      std::fprintf(stderr, "mask mismatch or text token %d not allowed\n", id);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: schema_mask MODEL.gguf SCHEMA.json TEXT.json\n");
    return 2;
  }
  auto runner = gannet::engine::ModelRunner::Load(argv[1], {.n_threads = 1, .n_ctx = 256});
  if (!runner.ok()) {
    std::fprintf(stderr, "%s\n", runner.status().ToString().c_str());
    return 1;
  }
  const gannet::Tokenizer& tok = (*runner)->tokenizer();
  std::vector<std::string> pieces(static_cast<size_t>((*runner)->config().n_vocab));
  for (int32_t id = 0; id < tok.n_vocab(); ++id) pieces[id] = tok.TokenToPiece(id, false);
  auto vocab = TokenVocabulary::Create(std::move(pieces), tok.end_of_generation_ids());
  auto grammar = gannet::grammar::CompileJsonSchema(
      nlohmann::ordered_json::parse(ReadAll(argv[2]), nullptr, false));
  if (!vocab.ok() || !grammar.ok()) {
    std::fprintf(stderr, "setup failed\n");
    return 1;
  }
  std::string text = ReadAll(argv[3]);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const std::vector<int32_t> tokens = tok.Encode(text, false, false);
  std::printf("schema_mask: %zu tokens of text, n_vocab %zu (build/bin/schema_mask %s %s %s)\n",
              tokens.size(), (*vocab)->size(), argv[1], argv[2], argv[3]);
  std::printf("%-34s %10s %10s %10s %10s\n", "us per mask", "mean", "median", "p90", "max");
  const TokenVocabulary& v = **vocab;
  Times exact, cold, warm, cold_no_states;
  MaskCache cache(*vocab, *grammar);
  MaskCache no_states(*vocab, *grammar, {.min_state_steps = std::numeric_limits<size_t>::max()});
  auto fill_with = [](const MaskCache& c) {
    return
        [&c](const Matcher& m, std::span<uint32_t> mask) { return c.FillNextTokenMask(m, mask); };
  };
  if (!Walk(
          *grammar, v, tokens,
          [&](const Matcher& m, std::span<uint32_t> mask) { return v.FillNextTokenMask(m, mask); },
          &exact) ||
      !Walk(*grammar, v, tokens, fill_with(cache), &cold) ||
      !Walk(*grammar, v, tokens, fill_with(cache), &warm) ||
      !Walk(*grammar, v, tokens, fill_with(no_states), &cold_no_states)) {
    return 1;
  }
  exact.Print("exact walk");
  cold.Print("MaskCache, first text (cold)");
  warm.Print("MaskCache, same text again (warm)");
  cold_no_states.Print("cold, no whole-state masks");
  const MaskCache::Stats st = cache.stats();
  std::printf("cache: %zu self-loop entries, %zu whole-state masks, %.1f KiB\n", st.entries,
              st.states, st.bytes / 1024.0);
  return 0;
}
