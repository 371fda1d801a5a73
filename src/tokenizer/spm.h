// SentencePiece-style encoding of one text fragment, as llama.cpp's llm_tokenizer_spm_session
// (reference §4): symbols start as UTF-8 characters (length judged by the lead byte only, so
// invalid input is safe), the adjacent pair that forms the highest-scoring token merges first
// (ties: leftmost), and a final symbol that is not a token is written as byte tokens.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tokenizer/vocab_index.h"

namespace gannet {

struct SpmVocabView {
  const TokenMap* token_to_id = nullptr;
  std::span<const float> scores;  // per id
  const std::array<int32_t, 256>* byte_tokens =
      nullptr;           // -1 where the vocab has no token for a byte
  int32_t unknown = -1;  // written for a byte without a token (-1: dropped)
};

// REQUIRES: `text` has spaces already escaped as U+2581 (and the optional prefix space added).
void SpmEncode(const SpmVocabView& vocab, std::string_view text, std::vector<int32_t>* out);

}  // namespace gannet
