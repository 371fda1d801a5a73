#include "base/utf8.h"

#include <algorithm>

namespace gannet::unicode {

bool IsWhitespace(uint32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85) return false;
  switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

size_t SequenceLength(uint8_t lead) {
  static constexpr uint8_t kByHighNibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kByHighNibble[lead >> 4];
}

namespace {

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// One code point at `pos`, or nullopt-like false when llama.cpp's decoder would throw.
bool DecodeOne(std::string_view s, size_t pos, uint32_t* cp, size_t* len) {
  const auto at = [&](size_t i) { return static_cast<uint8_t>(s[pos + i]); };
  const uint8_t b0 = at(0);
  if (b0 < 0x80) {
    *cp = b0;
    *len = 1;
    return true;
  }
  size_t n;
  uint32_t value;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    value = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    value = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    value = b0 & 0x07;
  } else {
    return false;  // continuation byte or 0xF8..0xFF as lead
  }
  if (pos + n > s.size()) return false;
  for (size_t i = 1; i < n; ++i) {
    if (!IsContinuation(at(i))) return false;
    value = (value << 6) | (at(i) & 0x3F);
  }
  *cp = value;
  *len = n;
  return true;
}

}  // namespace

std::vector<uint32_t> DecodeLenient(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp;
    size_t len;
    if (DecodeOne(text, pos, &cp, &len)) {
      out.push_back(cp);
      pos += len;
    } else {
      out.push_back(kReplacementChar);
      pos += 1;
    }
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp > kMaxCodepoint) cp = kReplacementChar;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Strict validation of one sequence starting at s[0]. Returns its length when complete and valid,
// 0 when invalid, and -1 (as SIZE_MAX) when it is a valid beginning cut short.
constexpr size_t kTruncated = static_cast<size_t>(-1);

size_t StrictSequence(std::string_view s) {
  const uint8_t b0 = static_cast<uint8_t>(s[0]);
  if (b0 < 0x80) return 1;
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t i = 1; i < n; ++i) {
    if (i >= s.size()) return kTruncated;
    const uint8_t b = static_cast<uint8_t>(s[i]);
    const uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) return 0;
  }
  return n;
}

}  // namespace

size_t ValidUtf8Prefix(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t n = StrictSequence(bytes.substr(pos));
    if (n == 0 || n == kTruncated) break;
    pos += n;
  }
  return pos;
}

size_t InvalidSequenceLength(std::string_view bytes) {
  // The longest prefix that is still the valid beginning of a sequence is one maximal subpart.
  size_t subpart = 0;
  for (size_t len = 1; len <= std::min<size_t>(bytes.size(), 3); ++len) {
    if (StrictSequence(bytes.substr(0, len)) != kTruncated) break;
    subpart = len;
  }
  return std::max<size_t>(subpart, 1);
}

bool IsIncompleteUtf8Tail(std::string_view tail) {
  return !tail.empty() && StrictSequence(tail) == kTruncated;
}

}  // namespace gannet::unicode
