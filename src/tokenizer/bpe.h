// Byte-level BPE (GPT-2 style) as llama.cpp's llm_tokenizer_bpe_session (reference §5.1).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab_index.h"

namespace gannet {

// GPT-2's reversible byte -> printable code point map (printable Latin-1 bytes map to themselves,
// the others to U+0100 onwards; space becomes 'Ġ'), applied to every byte of `bytes`.
std::string ByteLevelEncode(std::string_view bytes);

// Inverse of ByteLevelEncode for a token's text. A code point outside the map is written as
// "[UNK_BYTE_0x<hex of its UTF-8>" + text + "]", exactly as llama.cpp's llama_decode_text.
std::string ByteLevelDecode(std::string_view text);

struct BpeVocabView {
  const TokenMap* token_to_id = nullptr;
  const BpeRanks* ranks = nullptr;
  bool ignore_merges = false;  // a word that is already a token is emitted without merging
};

// Merges one pre-tokenized, byte-level-encoded word: repeatedly the adjacent pair of lowest
// rank (ties: leftmost). A final symbol that is not a token is written byte by byte, each byte
// looked up as a one-byte token text; bytes without such a token are dropped (llama.cpp does so).
void BpeEncodeWord(const BpeVocabView& vocab, std::string_view word, std::vector<int32_t>* out);

}  // namespace gannet
