// UTF-8 encoding, decoding and validation, and the Unicode White_Space property: the code point
// helpers that the tokenizers and the template language share. Decoding follows llama.cpp's exact
// leniency rules (llama.cpp src/unicode.cpp), since token ids must match llama.cpp byte for byte.
//
// Thread-safety: all functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gannet::unicode {

inline constexpr uint32_t kReplacementChar = 0xFFFD;
inline constexpr uint32_t kMaxCodepoint = 0x10FFFF;

// The Unicode White_Space property (\s): 0x09-0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000-0x200A,
// 0x2028, 0x2029, 0x202F, 0x205F, 0x3000.
bool IsWhitespace(uint32_t cp);

// Length of the UTF-8 sequence announced by `lead`, judged by its high nibble only (llama.cpp
// unicode_len_utf8): continuation bytes and 0xF8..0xFF count as 1, 0xF0..0xF7 as 4.
size_t SequenceLength(uint8_t lead);

// Decodes like llama.cpp unicode_cpts_from_utf8: a byte that does not start a complete sequence of
// the announced length (wrong continuation bytes, truncated, or 0x80..0xBF / 0xF8..0xFF as lead)
// becomes U+FFFD and consumes one byte. Overlong forms and surrogates are accepted as encoded;
// 0xF5..0xF7 leads may produce values above U+10FFFF (AppendUtf8 turns those into U+FFFD).
std::vector<uint32_t> DecodeLenient(std::string_view text);

// Appends the UTF-8 encoding of `cp`; values above U+10FFFF append U+FFFD (llama.cpp throws there).
void AppendUtf8(uint32_t cp, std::string* out);

// Length of the longest prefix of `bytes` that is strict, complete UTF-8 (no overlong forms, no
// surrogates, nothing above U+10FFFF).
size_t ValidUtf8Prefix(std::string_view bytes);

// Number of bytes at the start of `bytes` (not valid UTF-8 there) that one U+FFFD replaces: the
// maximal subpart of an ill-formed sequence (Unicode §3.9 U+FFFD substitution), at least 1.
size_t InvalidSequenceLength(std::string_view bytes);

// For text that ends in the middle of a sequence: true when the bytes after the last complete
// character could still become a valid character if more bytes arrived.
bool IsIncompleteUtf8Tail(std::string_view tail);

}  // namespace gannet::unicode
