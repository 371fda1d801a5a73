#include "tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace gannet {

namespace {

// byte -> code point of GPT-2's bytes_to_unicode().
std::array<uint32_t, 256> MakeByteToCodepoint() {
  std::array<uint32_t, 256> map{};
  std::array<bool, 256> printable{};
  for (int b = 0x21; b <= 0x7E; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) map[b] = printable[b] ? b : next++;
  return map;
}

const std::array<uint32_t, 256>& ByteToCodepoint() {
  static const std::array<uint32_t, 256> kMap = MakeByteToCodepoint();
  return kMap;
}

// code point -> byte, -1 when the code point is not in the map (the map covers U+0000..U+0143).
int CodepointToByte(uint32_t cp) {
  static const std::array<int16_t, 0x144> kInverse = [] {
    std::array<int16_t, 0x144> inv;
    inv.fill(-1);
    const auto& fwd = ByteToCodepoint();
    for (int b = 0; b < 256; ++b) inv[fwd[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  return cp < kInverse.size() ? kInverse[cp] : -1;
}

}  // namespace

std::string ByteLevelEncode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  const auto& map = ByteToCodepoint();
  for (const char c : bytes) unicode::AppendUtf8(map[static_cast<uint8_t>(c)], &out);
  return out;
}

std::string ByteLevelDecode(std::string_view text) {
  std::string out;
  for (const uint32_t cp : unicode::DecodeLenient(text)) {
    const int b = CodepointToByte(cp);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
      continue;
    }
    std::string utf8;
    unicode::AppendUtf8(cp, &utf8);
    out += "[UNK_BYTE_0x";
    for (const char c : utf8) {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02x", static_cast<uint8_t>(c));
      out += hex;
    }
    out.append(text);
    out += "]";
  }
  return out;
}

namespace {

struct Symbol {
  int prev;
  int next;
  size_t begin;
  size_t n;  // 0 once merged into the left neighbour
};

struct Bigram {
  int left;
  int right;
  int32_t rank;
  size_t size;
};

// Lowest rank first, then leftmost (llama.cpp llm_bigram_bpe::comparator).
struct BigramAfter {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void BpeEncodeWord(const BpeVocabView& vocab, std::string_view word, std::vector<int32_t>* out) {
  if (word.empty()) return;
  if (vocab.ignore_merges) {
    const int32_t id = FindId(*vocab.token_to_id, word);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t offs = 0; offs < word.size();) {
    const size_t n =
        std::min(unicode::SequenceLength(static_cast<uint8_t>(word[offs])), word.size() - offs);
    const int index = static_cast<int>(symbols.size());
    offs += n;
    symbols.push_back({index - 1, offs == word.size() ? -1 : index + 1, offs - n, n});
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramAfter> queue;
  const auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    const int32_t rank = vocab.ranks->Find(word.substr(l.begin, l.n), word.substr(r.begin, r.n));
    if (rank < 0) return;
    queue.push({left, right, rank, l.n + r.n});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // llama.cpp compares the pair's current text with the queued text; both start at the left
    // symbol's fixed offset, so equal lengths mean equal text.
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (const Symbol& s : symbols) {
    if (s.n == 0) continue;
    const std::string_view piece = word.substr(s.begin, s.n);
    const int32_t id = FindId(*vocab.token_to_id, piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (size_t j = 0; j < piece.size(); ++j) {
      const int32_t byte_id = FindId(*vocab.token_to_id, piece.substr(j, 1));
      if (byte_id >= 0) out->push_back(byte_id);
    }
  }
}

void BpeRanks::MakeKey(std::string_view left, std::string_view right, std::string* key) {
  key->clear();
  const uint32_t n = static_cast<uint32_t>(left.size());
  key->append(reinterpret_cast<const char*>(&n), sizeof(n));
  key->append(left);
  key->append(right);
}

void BpeRanks::Add(std::string_view merge, int32_t rank) {
  std::string_view left, right;
  const size_t pos = merge.size() > 1 ? merge.find(' ', 1) : std::string_view::npos;
  if (pos != std::string_view::npos) {
    left = merge.substr(0, pos);
    right = merge.substr(pos + 1);
  }
  std::string key;
  MakeKey(left, right, &key);
  ranks_.emplace(std::move(key), rank);
}

int32_t BpeRanks::Find(std::string_view left, std::string_view right) const {
  thread_local std::string key;
  MakeKey(left, right, &key);
  const auto it = ranks_.find(std::string_view(key));
  return it == ranks_.end() ? -1 : it->second;
}

}  // namespace gannet
