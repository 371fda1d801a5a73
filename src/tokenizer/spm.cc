#include "tokenizer/spm.h"

#include <algorithm>
#include <queue>

#include "tokenizer/unicode.h"

namespace gannet {
namespace {

struct Symbol {
  int prev;
  int next;
  size_t begin;  // byte offset in the text
  size_t n;      // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;
};

// Highest score first, then the leftmost pair (llama.cpp llm_bigram_spm::comparator).
struct BigramLess {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void SpmEncode(const SpmVocabView& vocab, std::string_view text, std::vector<int32_t>* out) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t offs = 0; offs < text.size();) {
    const size_t n =
        std::min(unicode::SequenceLength(static_cast<uint8_t>(text[offs])), text.size() - offs);
    const int index = static_cast<int>(symbols.size());
    offs += n;
    symbols.push_back({index - 1, offs == text.size() ? -1 : index + 1, offs - n, n});
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue;
  const auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string_view joined =
        text.substr(symbols[left].begin, symbols[left].n + symbols[right].n);
    const int32_t id = FindId(*vocab.token_to_id, joined);
    if (id < 0) return;
    queue.push({left, right, vocab.scores[id], joined.size()});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale: one side has been merged elsewhere since this pair was queued.
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  // Every merged symbol is a token, so a symbol that is not one is a single character; llama.cpp's
  // rev_merge re-segmentation therefore never applies and the character goes out as bytes.
  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = text.substr(s.begin, s.n);
    const int32_t id = FindId(*vocab.token_to_id, piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (const char c : piece) {
      const int32_t byte_id = (*vocab.byte_tokens)[static_cast<uint8_t>(c)];
      if (byte_id >= 0) {
        out->push_back(byte_id);
      } else if (vocab.unknown >= 0) {
        out->push_back(vocab.unknown);
      }
    }
  }
}

}  // namespace gannet
