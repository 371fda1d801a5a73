// The utility endpoints llama-server users expect beside the OpenAI API:
//   POST /tokenize    {"content": str, "add_special": bool = false, "parse_special": bool = true,
//                      "with_pieces": bool = false}
//                     -> {"tokens": [id, ...]}, or with pieces {"tokens": [{"id", "piece"}, ...]}
//                        (a piece that is not whole UTF-8 is given as its byte values)
//   POST /detokenize  {"tokens": [id, ...]} -> {"content": str}
//   GET  /props       the model, context, vocabulary, special tokens, chat template and build
// Bodies are parsed with the request JSON limits (bounded_json.h); bad fields are a 400 in
// OpenAI's error shape naming the field; token ids outside the vocabulary are a 400.
//
// Pure functions over an immutable Tokenizer; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/bounded_json.h"
#include "server/openai_request.h"
#include "tokenizer/tokenizer.h"

namespace gannet::server {

// POST /tokenize: the response body, or the 400 to send.
std::optional<ApiError> TokenizeJson(std::string_view body, const Tokenizer& tok,
                                     const JsonLimits& limits, std::string* out);

// POST /detokenize.
std::optional<ApiError> DetokenizeJson(std::string_view body, const Tokenizer& tok,
                                       const JsonLimits& limits, std::string* out);

struct PropsInfo {
  std::string model_id;
  int64_t context_length = 0;
  int32_t total_slots = 0;  // sequences decoded together
  std::string chat_template;
  std::string speculative;  // the drafting method ("none", "ngram", "draft:FILE_NAME")
  std::string build;
};

// GET /props.
std::string PropsJson(const PropsInfo& info, const Tokenizer& tok);

}  // namespace gannet::server
