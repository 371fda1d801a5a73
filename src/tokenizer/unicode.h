// Code point classes for the pre-tokenizers (\p{L}, \p{N}) as llama.cpp's tables have them
// (llama.cpp src/unicode.cpp), since token ids must match llama.cpp byte for byte. The UTF-8 codec
// (llama.cpp's leniency) and White_Space come from base/utf8.h, in the same namespace.
//
// Thread-safety: all functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/utf8.h"

namespace gannet::unicode {

enum class CodepointClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2 };

struct CodepointRange {
  uint32_t first;
  uint32_t last;  // inclusive
  CodepointClass cls;
};

// Generated (unicode_tables.cc): sorted, disjoint ranges of \p{L} and \p{N}, Unicode 15.1 as
// llama.cpp.
extern const CodepointRange kCategoryRanges[];
extern const size_t kNumCategoryRanges;

// \p{L} / \p{N} membership; anything past U+10FFFF is kOther.
CodepointClass Classify(uint32_t cp);
inline bool IsLetter(uint32_t cp) { return Classify(cp) == CodepointClass::kLetter; }
inline bool IsNumber(uint32_t cp) { return Classify(cp) == CodepointClass::kNumber; }

}  // namespace gannet::unicode
