// Agreement with llama.cpp: every corpus line encodes to exactly the ids llama.cpp produces
// (goldens written by tools/tokenizer_golden.py), for the default model (Gemma 3, SentencePiece)
// and llama.cpp's vocabulary files (tools/fetch_vocabs.py). Also: llama_detokenize's output, token
// pieces (hashed per block), end-of-generation ids, and the incremental decoder against the full
// decode.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace gannet {
namespace {

using Json = nlohmann::json;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::vector<Json> ReadJsonLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::vector<Json> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(Json::parse(line));
  }
  return out;
}

std::string TextOf(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  const std::string hex = v.at("hex").get<std::string>();
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string Printable(std::string_view s, size_t max = 80) {
  std::string out;
  for (const char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (u < 0x20) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02x", u);
      out += b;
    } else
      out.push_back(c);
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string IdsDiff(const std::vector<int32_t>& want, const std::vector<int32_t>& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  std::ostringstream os;
  os << "first difference at index " << i << " (llama.cpp " << want.size() << " ids, gannet "
     << got.size() << ")";
  const auto show = [&](const char* who, const std::vector<int32_t>& v) {
    os << "\n    " << who << ": ...";
    for (size_t k = i >= 3 ? i - 3 : 0; k < v.size() && k < i + 6; ++k) os << " " << v[k];
  };
  show("llama.cpp", want);
  show("gannet   ", got);
  return os.str();
}

uint64_t PieceHash(const Tokenizer& tok, int32_t begin, int32_t end) {
  uint64_t h = 0xCBF29CE484222325ull;
  const auto feed = [&](std::string_view bytes) {
    for (const char c : bytes) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;
  };
  for (int32_t t = begin; t < end; ++t) {
    for (const bool special : {true, false}) {
      const std::string p = tok.TokenToPiece(t, special);
      const uint32_t n = static_cast<uint32_t>(p.size());
      const char len[4] = {static_cast<char>(n), static_cast<char>(n >> 8),
                           static_cast<char>(n >> 16), static_cast<char>(n >> 24)};
      feed(std::string_view(len, 4));
      feed(p);
    }
  }
  return h;
}

class LlamaCppAgreement : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppAgreement, MatchesGoldens) {
  const std::string vocab = GetParam();
  const std::string path = vocab == "gemma3"
                               ? Env("GANNET_TEST_MODEL")
                               : Env("GANNET_VOCAB_DIR") + "/ggml-vocab-" + vocab + ".gguf";
  ASSERT_FALSE(path.empty() || path == "/ggml-vocab-" + vocab + ".gguf")
      << "set GANNET_TEST_MODEL and GANNET_VOCAB_DIR (ctest does)";
  Result<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  Result<std::unique_ptr<Tokenizer>> tok_or = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok_or.ok()) << tok_or.status().ToString();
  const Tokenizer& tok = **tok_or;

  const std::vector<Json> corpus =
      ReadJsonLines(std::string(GANNET_FIXTURES_DIR) + "/tokenizer/corpus.jsonl");
  const std::vector<Json> golden =
      ReadJsonLines(std::string(GANNET_FIXTURES_DIR) + "/tokenizer/" + vocab + ".jsonl");
  ASSERT_EQ(golden.size(), corpus.size() + 1) << "goldens are stale: run tools/tokenizer_golden.py";

  const Json& h = golden[0];
  EXPECT_EQ(tok.n_vocab(), h["n_vocab"].get<int32_t>());
  EXPECT_EQ(tok.bos(), h["bos"].get<int32_t>());
  EXPECT_EQ(tok.eos(), h["eos"].get<int32_t>());
  EXPECT_EQ(tok.add_bos(), h["add_bos"].get<bool>());
  EXPECT_EQ(tok.add_eos(), h["add_eos"].get<bool>());
  EXPECT_EQ(tok.end_of_generation_ids(), h["eog"].get<std::vector<int32_t>>());
  const std::vector<std::string> hashes = h["piece_hashes"].get<std::vector<std::string>>();
  int bad_blocks = 0;
  for (size_t b = 0; b < hashes.size(); ++b) {
    const int32_t begin = static_cast<int32_t>(b * 4096),
                  end = std::min(begin + 4096, tok.n_vocab());
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx",
                  static_cast<unsigned long long>(PieceHash(tok, begin, end)));
    if (hex != hashes[b] && ++bad_blocks <= 3)
      ADD_FAILURE() << "token pieces differ in ids [" << begin << ", " << end << ")";
  }

  const auto wrap = [&](std::vector<int32_t> ids) {
    if (tok.add_bos()) ids.insert(ids.begin(), tok.bos());
    if (tok.add_eos()) ids.push_back(tok.eos());
    return ids;
  };
  int identical = 0, reported = 0, roundtrips = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = TextOf(corpus[i]);
    const Json& g = golden[i + 1];
    const auto want_p = g["p"].get<std::vector<int32_t>>();
    const auto want_ps = g.contains("ps") ? g["ps"].get<std::vector<int32_t>>() : want_p;
    const auto want_a = g.contains("a") ? g["a"].get<std::vector<int32_t>>() : wrap(want_p);
    const auto want_as = g.contains("as") ? g["as"].get<std::vector<int32_t>>() : wrap(want_ps);
    const auto got_p = tok.Encode(text, false, false);
    const auto got_ps = tok.Encode(text, false, true);
    const auto got_a = tok.Encode(text, true, false);
    const auto got_as = tok.Encode(text, true, true);
    bool ok = true;
    const auto check = [&](const char* what, const std::vector<int32_t>& want,
                           const std::vector<int32_t>& got) {
      if (want == got) return;
      ok = false;
      if (++reported <= 8) {
        ADD_FAILURE() << vocab << " line " << i + 1 << " [" << what << "] \"" << Printable(text)
                      << "\": " << IdsDiff(want, got);
      }
    };
    check("add_special=0 parse_special=0", want_p, got_p);
    check("add_special=0 parse_special=1", want_ps, got_ps);
    check("add_special=1 parse_special=0", want_a, got_a);
    check("add_special=1 parse_special=1", want_as, got_as);

    const std::string d =
        tok.Decode(want_p, DecodeOptions{.render_special = false, .clean_spaces = true});
    const std::string ds =
        tok.Decode(want_as, DecodeOptions{.render_special = true, .clean_spaces = true});
    if (d != TextOf(g["d"]) || ds != TextOf(g["ds"])) {
      ok = false;
      if (++reported <= 8) {
        ADD_FAILURE() << vocab << " line " << i + 1 << " decode differs: llama.cpp \""
                      << Printable(TextOf(g["d"])) << "\" / \"" << Printable(TextOf(g["ds"]))
                      << "\", gannet \"" << Printable(d) << "\" / \"" << Printable(ds) << "\"";
      }
    }
    if (TextOf(g["d"]) == text) {
      ++roundtrips;
      EXPECT_EQ(tok.Decode(tok.Encode(text, false, false), DecodeOptions{.clean_spaces = true}),
                text);
    }

    // Streaming: the incremental pieces join to the full decode (no clean-up: it is not
    // streamable).
    const std::string full = tok.Decode(want_p, false);
    if (unicode::ValidUtf8Prefix(full) == full.size()) {
      IncrementalDecoder dec(tok);
      std::string streamed;
      for (const int32_t id : want_p) streamed += dec.Feed(id);
      streamed += dec.Finish();
      EXPECT_EQ(streamed, full) << vocab << " line " << i + 1;
    }
    identical += ok;
  }
  std::printf(
      "[ %-9s ] %d / %zu corpus lines identical to llama.cpp (ids x4, detokenize x2); "
      "%d round-trip in llama.cpp\n",
      vocab.c_str(), identical, corpus.size(), roundtrips);
  EXPECT_EQ(identical, static_cast<int>(corpus.size()));
}

INSTANTIATE_TEST_SUITE_P(Vocabs, LlamaCppAgreement,
                         ::testing::Values("gemma3", "llama-bpe", "qwen2", "gpt-2", "llama-spm",
                                           "phi-3", "starcoder", "smollm"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace gannet
