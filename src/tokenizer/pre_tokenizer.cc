#include "tokenizer/pre_tokenizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace gannet {

std::optional<PreTokenizerConfig> LookupPreTokenizer(std::string_view pre) {
  // Names and flags as llama.cpp's llama_vocab::impl::load maps them.
  const auto config = [](PreTokenizerKind kind, bool ignore_merges, bool clean_spaces,
                         std::optional<bool> add_bos) {
    return PreTokenizerConfig{.kind = kind,
                              .ignore_merges = ignore_merges,
                              .clean_spaces = clean_spaces,
                              .add_bos = add_bos};
  };
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" ||
      pre == "pixtral") {
    return config(PreTokenizerKind::kLlama3, /*ignore_merges=*/true, /*clean_spaces=*/true,
                  /*add_bos=*/true);
  }
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    return config(PreTokenizerKind::kQwen2, false, /*clean_spaces=*/false, std::nullopt);
  }
  // "gpt2" is not a llama.cpp name (it rejects it); accepted here as an alias of "gpt-2".
  if (pre == "gpt-2" || pre == "gpt2" || pre == "phi-2" || pre == "mpt" || pre == "olmo") {
    return config(PreTokenizerKind::kGpt2, false, true, std::nullopt);
  }
  if (pre == "smollm" || pre == "command-r") {
    return config(PreTokenizerKind::kDigitsThenGpt2, false, /*clean_spaces=*/false, std::nullopt);
  }
  if (pre == "starcoder" || pre == "refact" || pre == "codeshell") {
    return config(PreTokenizerKind::kDigitsThenGpt2, false, true, std::nullopt);
  }
  return std::nullopt;
}

namespace {

constexpr uint32_t kOutside = 0xFFFFFFFF;

// The code points of one segment with llama.cpp's scanner view: positions outside [begin, end)
// read as kOutside and have no properties at all.
class Segment {
 public:
  Segment(const std::vector<uint32_t>& cpts, size_t begin, size_t end, std::vector<size_t>* lengths)
      : cpts_(cpts), begin_(begin), end_(end), emitted_(begin), lengths_(lengths) {}

  struct Props {
    bool inside = false;
    bool letter = false;
    bool number = false;
    bool space = false;
    bool Lns() const { return letter || number || space; }  // \s, \p{L} or \p{N}
  };

  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  uint32_t At(size_t pos) const { return pos >= begin_ && pos < end_ ? cpts_[pos] : kOutside; }
  Props PropsAt(size_t pos) const {
    Props p;
    if (pos < begin_ || pos >= end_) return p;
    const uint32_t cp = cpts_[pos];
    const unicode::CodepointClass cls = unicode::Classify(cp);
    p.inside = true;
    p.letter = cls == unicode::CodepointClass::kLetter;
    p.number = cls == unicode::CodepointClass::kNumber;
    p.space = unicode::IsWhitespace(cp);
    return p;
  }
  // Ends the current word at `pos` (nothing when empty); returns its length.
  size_t EmitUntil(size_t pos) {
    const size_t len = pos - emitted_;
    if (len > 0) lengths_->push_back(len);
    emitted_ = pos;
    return len;
  }

 private:
  const std::vector<uint32_t>& cpts_;
  size_t begin_, end_, emitted_;
  std::vector<size_t>* lengths_;
};

uint32_t AsciiLower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// 's 't 're 've 'm 'll 'd at `pos`: returns the match length (0 when none).
size_t ContractionAt(const Segment& s, size_t pos, bool ignore_case) {
  if (s.At(pos) != '\'' || pos + 1 >= s.end()) return 0;
  const auto norm = [&](uint32_t c) { return ignore_case ? AsciiLower(c) : c; };
  const uint32_t a = norm(s.At(pos + 1));
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= s.end()) return 0;
  const uint32_t b = norm(s.At(pos + 2));
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// Whitespace run at `pos`: \s+(?!\S) leaves the last space for the next word when something
// follows inside the segment; otherwise the whole run is one word. Returns false when no space.
bool TakeSpaces(Segment& s, size_t* pos) {
  size_t n = 0;
  while (s.PropsAt(*pos + n).space) ++n;
  if (n == 0) return false;
  if (n > 1 && s.At(*pos + n) != kOutside) {
    *pos += n - 1;
  } else {
    *pos += n;
  }
  s.EmitUntil(*pos);
  return true;
}

void SplitGpt2(Segment& s) {
  size_t pos = s.begin();
  while (pos < s.end()) {
    if (const size_t n = ContractionAt(s, pos, /*ignore_case=*/false)) {
      pos += s.EmitUntil(pos + n);
      continue;
    }
    const uint32_t cp = s.At(pos);
    // " ?X+" for X in \p{L}, \p{N}, [^\s\p{L}\p{N}]: the optional space looks at the next char.
    Segment::Props p = cp == ' ' ? s.PropsAt(pos + 1) : s.PropsAt(pos);
    if (p.letter || p.number || (!p.Lns() && p.inside)) {
      const bool letter = p.letter, number = p.number;
      const auto same_class = [&](const Segment::Props& q) {
        return letter ? q.letter : number ? q.number : (!q.Lns() && q.inside);
      };
      if (cp == ' ') ++pos;
      while (same_class(p)) p = s.PropsAt(++pos);
      s.EmitUntil(pos);
      continue;
    }
    if (TakeSpaces(s, &pos)) continue;
    s.EmitUntil(++pos);
  }
}

// Llama 3 (digit_group = 3) and Qwen2 (digit_group = 1).
void SplitLlama3Like(Segment& s, size_t digit_group) {
  size_t pos = s.begin();
  while (pos < s.end()) {
    if (const size_t n = ContractionAt(s, pos, /*ignore_case=*/true)) {
      pos += s.EmitUntil(pos + n);
      continue;
    }
    const uint32_t cp = s.At(pos);
    const Segment::Props here = s.PropsAt(pos);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(cp == '\r' || cp == '\n' || here.number) && (here.letter || s.PropsAt(pos + 1).letter)) {
      ++pos;
      while (s.PropsAt(pos).letter) ++pos;
      s.EmitUntil(pos);
      continue;
    }
    // \p{N}{1,digit_group}
    if (here.number) {
      size_t group_start = pos;
      while (s.PropsAt(pos).number) {
        if (++pos - group_start >= digit_group) {
          s.EmitUntil(pos);
          group_start = pos;
        }
      }
      s.EmitUntil(pos);
      continue;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"; llama.cpp tests the optional space's own presence, so a
    // final lone space also lands here.
    Segment::Props p = cp == ' ' ? s.PropsAt(pos + 1) : here;
    if (!p.Lns() && here.inside) {
      if (cp == ' ') ++pos;
      while (!p.Lns() && p.inside) p = s.PropsAt(++pos);
      while (s.At(pos) == '\r' || s.At(pos) == '\n') ++pos;
      s.EmitUntil(pos);
      continue;
    }
    // \s*[\r\n]+ : up to the last \r or \n of the whitespace run.
    size_t n = 0, end_of_newlines = 0;
    while (s.PropsAt(pos + n).space) {
      const uint32_t c = s.At(pos + n);
      if (c == '\r' || c == '\n') end_of_newlines = pos + n + 1;
      ++n;
    }
    if (end_of_newlines > 0) {
      pos = end_of_newlines;
      s.EmitUntil(pos);
      continue;
    }
    if (TakeSpaces(s, &pos)) continue;
    s.EmitUntil(++pos);
  }
}

// \p{N}: every number code point on its own, the text between as one piece.
void SplitDigits(Segment& s) {
  for (size_t pos = s.begin(); pos < s.end(); ++pos) {
    if (s.PropsAt(pos).number) {
      s.EmitUntil(pos);
      s.EmitUntil(pos + 1);
    }
  }
  s.EmitUntil(s.end());
}

template <typename Fn>
std::vector<size_t> ApplyToSegments(const std::vector<uint32_t>& cpts,
                                    const std::vector<size_t>& lengths, Fn fn) {
  std::vector<size_t> out;
  out.reserve(lengths.size());
  size_t begin = 0;
  for (const size_t len : lengths) {
    Segment s(cpts, begin, begin + len, &out);
    fn(s);
    begin += len;
  }
  return out;
}

}  // namespace

std::vector<std::string> PreTokenize(PreTokenizerKind kind, std::string_view text) {
  const std::vector<uint32_t> cpts = unicode::DecodeLenient(text);
  std::vector<size_t> lengths = {cpts.size()};
  switch (kind) {
    case PreTokenizerKind::kGpt2:
      lengths = ApplyToSegments(cpts, lengths, SplitGpt2);
      break;
    case PreTokenizerKind::kLlama3:
      lengths = ApplyToSegments(cpts, lengths, [](Segment& s) { SplitLlama3Like(s, 3); });
      break;
    case PreTokenizerKind::kQwen2:
      lengths = ApplyToSegments(cpts, lengths, [](Segment& s) { SplitLlama3Like(s, 1); });
      break;
    case PreTokenizerKind::kDigitsThenGpt2:
      lengths = ApplyToSegments(cpts, lengths, SplitDigits);
      lengths = ApplyToSegments(cpts, lengths, SplitGpt2);
      break;
  }
  std::vector<std::string> words;
  words.reserve(lengths.size());
  size_t pos = 0;
  for (const size_t len : lengths) {
    std::string& w = words.emplace_back();
    for (size_t i = pos; i < pos + len; ++i) unicode::AppendUtf8(cpts[i], &w);
    pos += len;
  }
  return words;
}

}  // namespace gannet
