#include "tokenizer/unicode.h"

#include <algorithm>

namespace gannet::unicode {

CodepointClass Classify(uint32_t cp) {
  if (cp < 0x80) {
    if (cp >= '0' && cp <= '9') return CodepointClass::kNumber;
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CodepointClass::kLetter;
    return CodepointClass::kOther;
  }
  const CodepointRange* end = kCategoryRanges + kNumCategoryRanges;
  const CodepointRange* it = std::upper_bound(
      kCategoryRanges, end, cp, [](uint32_t v, const CodepointRange& r) { return v < r.first; });
  if (it == kCategoryRanges) return CodepointClass::kOther;
  --it;
  return cp <= it->last ? it->cls : CodepointClass::kOther;
}

}  // namespace gannet::unicode
