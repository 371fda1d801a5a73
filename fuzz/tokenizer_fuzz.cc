// libFuzzer target: the tokenizers (tokenizer/) on arbitrary text. The vocabularies are those of
// the small model fixtures (tests/fixtures/tiny: an SPM, a BPE with the qwen2 pre-tokenizer, and
// Gemma 3's SPM), read once. The first input byte picks the vocabulary and the flags; the rest is
// encoded, and the ids are decoded whole and through the IncrementalDecoder. Checks: ids are in
// range, the incremental pieces join to whole UTF-8, and where Decode gives valid UTF-8 they are
// equal to it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

std::vector<std::unique_ptr<gannet::Tokenizer>>* LoadTokenizers() {
  auto* toks = new std::vector<std::unique_ptr<gannet::Tokenizer>>;
  for (const char* name : {"tiny-llama-f32.gguf", "tiny-qwen2-f32.gguf", "tiny-gemma3-f32.gguf"}) {
    auto file = gannet::GgufFile::Open(std::string(GANNET_FIXTURES_DIR) + "/tiny/" + name);
    if (!file.ok()) __builtin_trap();  // the fixtures are part of the repository
    auto tok = gannet::Tokenizer::FromGguf(**file);
    if (!tok.ok()) __builtin_trap();
    toks->push_back(std::move(tok).value());
  }
  return toks;
}

// Reports which property failed (libFuzzer keeps the input) and stops.
[[noreturn]] void Fail(const char* what, std::string_view a = {}, std::string_view b = {}) {
  std::fprintf(stderr, "tokenizer_fuzz: %s\n  [%.*s]\n  [%.*s]\n", what, static_cast<int>(a.size()),
               a.data(), static_cast<int>(b.size()), b.data());
  std::abort();
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      n = 1, cp = c;
    } else if ((c >> 5) == 6) {
      n = 2, cp = c & 0x1F;
    } else if ((c >> 4) == 14) {
      n = 3, cp = c & 0x0F;
    } else if ((c >> 3) == 30) {
      n = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const unsigned char cc = s[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<std::unique_ptr<gannet::Tokenizer>>* toks = LoadTokenizers();
  if (size < 1) return 0;
  const gannet::Tokenizer& tok = *(*toks)[data[0] % toks->size()];
  const bool add_special = data[0] & 0x10;
  const bool parse_special = data[0] & 0x20;
  const bool render_special = data[0] & 0x40;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<int32_t> ids = tok.Encode(text, add_special, parse_special);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.n_vocab()) Fail("id out of range");
  }
  const std::string whole = tok.Decode(ids, render_special);
  gannet::IncrementalDecoder dec(tok, render_special);
  std::string joined;
  for (int32_t id : ids) joined += dec.Feed(id);
  joined += dec.Finish();
  if (!ValidUtf8(joined)) Fail("IncrementalDecoder output is not UTF-8", joined);
  if (ValidUtf8(whole) && joined != whole) Fail("IncrementalDecoder != Decode", joined, whole);
  return 0;
}
