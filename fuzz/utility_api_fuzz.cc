// libFuzzer target: the bodies of POST /tokenize and POST /detokenize (server/tokenize_api.h) on
// arbitrary bytes, with the tiny Gemma 3 fixture's tokenizer (an SPM with Gemma's special tokens).
// The first input byte picks the endpoint; the rest is the body. Checks: a refusal is a 400 naming
// a reason; an answer is JSON of the documented shape, and detokenize's ids were all in range.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "formats/gguf.h"
#include "server/tokenize_api.h"
#include "tokenizer/tokenizer.h"

namespace {

const gannet::Tokenizer& Tok() {
  static const gannet::Tokenizer* tok = [] {
    auto file =
        gannet::GgufFile::Open(std::string(GANNET_FIXTURES_DIR) + "/tiny/tiny-gemma3-f32.gguf");
    if (!file.ok()) __builtin_trap();  // the fixture is part of the repository
    auto t = gannet::Tokenizer::FromGguf(**file);
    if (!t.ok()) __builtin_trap();
    return t->release();
  }();
  return *tok;
}

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "utility_api_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const bool tokenize = (data[0] & 1) == 0;
  std::string out;
  const gannet::server::JsonLimits limits;
  const std::optional<gannet::server::ApiError> err =
      tokenize ? gannet::server::TokenizeJson(body, Tok(), limits, &out)
               : gannet::server::DetokenizeJson(body, Tok(), limits, &out);
  if (err) {
    if (err->http_status != 400 || err->message.empty()) Fail("a refusal that is not a 400");
    return 0;
  }
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) Fail("an answer that is not a JSON object");
  if (tokenize ? !j.contains("tokens") : !j["content"].is_string()) Fail("wrong answer shape");
  return 0;
}
