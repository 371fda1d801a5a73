// Strict UTF-8 decoding of one character, the rule Matcher::StepByte applies byte by byte
// (Unicode Table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF). Internal to
// grammar/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gannet::grammar {

// The length of the strict UTF-8 character at s[i] (Unicode Table 3-7, the rules of
// Matcher::StepByte) with its code point in *cp; 0 when it is invalid or cut short.
inline size_t DecodeStrict(std::string_view s, size_t i, uint32_t* cp) {
  auto b = static_cast<uint8_t>(s[i]);
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2, *cp = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3, *cp = b & 0x0F;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4, *cp = b & 0x07;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t j = 1; j < n; ++j) {
    auto c = static_cast<uint8_t>(s[i + j]);
    if (c < lo || c > hi) return 0;
    lo = 0x80, hi = 0xBF;
    *cp = (*cp << 6) | (c & 0x3F);
  }
  return n;
}

}  // namespace gannet::grammar
