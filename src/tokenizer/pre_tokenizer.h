// Pre-tokenizers of byte-level BPE vocabularies: split text into words before merging.
//
// Each splitter reproduces what llama.cpp's unicode_regex_split produces for the regex that
// tokenizer.ggml.pre selects (llama.cpp src/llama-vocab.cpp llm_tokenizer_bpe; the regexes are
// quoted next to each kind). llama.cpp evaluates the common regexes with hand-written scanners
// whose results differ from a real regex engine in corner cases; gannet follows the scanners.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gannet {

enum class PreTokenizerKind {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  // ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // as kLlama3 with single digits: \p{N} instead of \p{N}{1,3}
  kQwen2,
  // \p{N} isolated first, then the GPT-2 regex (smollm, starcoder, refact, command-r, ...)
  kDigitsThenGpt2,
};

// Maps a tokenizer.ggml.pre value to its splitter and flags; nullopt when gannet does not support
// it.
struct PreTokenizerConfig {
  PreTokenizerKind kind = PreTokenizerKind::kGpt2;
  bool ignore_merges = false;   // a word that is a whole token is emitted as is
  bool clean_spaces = true;     // detokenize removes " ," " ." ... (clean_up_tokenization_spaces)
  std::optional<bool> add_bos;  // the pre-tokenizer's default when the file says nothing
};
std::optional<PreTokenizerConfig> LookupPreTokenizer(std::string_view pre);

// Splits `text` (any bytes) into words. Invalid UTF-8 is decoded leniently (unicode.h
// DecodeLenient), so the words are valid UTF-8 with U+FFFD for each bad byte, as in llama.cpp.
std::vector<std::string> PreTokenize(PreTokenizerKind kind, std::string_view text);

}  // namespace gannet
