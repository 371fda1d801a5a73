#include "engine/ngram_drafter.h"

#include <algorithm>
#include <numeric>

namespace gannet::engine {

NgramDrafter::NgramDrafter(const NgramDrafterOptions& options) : options_(options) {
  options_.min_ngram = std::max(options_.min_ngram, 1);
  options_.max_ngram = std::max(options_.max_ngram, options_.min_ngram);
  options_.max_matches = std::max(options_.max_matches, 1);
  options_.max_depth = std::max(options_.max_depth, 1);
  options_.max_indexed = std::max(options_.max_indexed, 2 * options_.max_ngram + 2);
  index_.resize(static_cast<size_t>(options_.max_ngram));
}

uint64_t NgramDrafter::Hash(size_t end, int32_t n) const {
  uint64_t h = 0xcbf29ce484222325ull ^ static_cast<uint64_t>(n);
  for (size_t i = end - static_cast<size_t>(n); i < end; ++i) {
    h ^= static_cast<uint32_t>(tokens_[i]);
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  }
  return h;
}

void NgramDrafter::Index(size_t at) {
  // The new token continues every n-gram (inside the indexed span) that ends just before it.
  for (int32_t n = 1; n <= options_.max_ngram && static_cast<size_t>(n) <= at - index_start_; ++n) {
    std::vector<int32_t>& where = index_[static_cast<size_t>(n - 1)][Hash(at, n)];
    if (where.size() == 2 * kMaxPositions)
      where.erase(where.begin(), where.begin() + kMaxPositions);
    where.push_back(static_cast<int32_t>(at));
  }
}

void NgramDrafter::Append(std::span<const int32_t> tokens) {
  for (const int32_t t : tokens) {
    tokens_.push_back(t);
    const size_t len = tokens_.size();
    if (len - index_start_ > static_cast<size_t>(options_.max_indexed)) {
      // Rebuilt over the newest half: each token is indexed at most twice in all.
      index_start_ = len - static_cast<size_t>(options_.max_indexed) / 2;
      for (auto& m : index_) m.clear();
      for (size_t at = index_start_ + 1; at < len; ++at) Index(at);
    } else {
      Index(len - 1);
    }
  }
}

void NgramDrafter::Candidates(std::vector<Candidate>* out) const {
  const size_t len = tokens_.size();
  for (int32_t n = options_.max_ngram; n >= options_.min_ngram; --n) {
    if (static_cast<size_t>(n) > len) continue;
    const auto it = index_[static_cast<size_t>(n - 1)].find(Hash(len, n));
    if (it == index_[static_cast<size_t>(n - 1)].end()) continue;
    for (auto p = it->second.rbegin(); p != it->second.rend(); ++p) {
      const int32_t start = *p;
      // A hash collision, or an occurrence a longer n-gram already contributed.
      if (!std::equal(tokens_.begin() + (start - n), tokens_.begin() + start, tokens_.end() - n))
        continue;
      if (std::any_of(out->begin(), out->end(),
                      [&](const Candidate& c) { return c.start == start; }))
        continue;
      out->push_back({.start = start, .weight = n});
      if (static_cast<int32_t>(out->size()) >= options_.max_matches) return;
    }
  }
}

Draft NgramDrafter::Propose(int32_t max_nodes, int32_t max_depth) const {
  Draft draft;
  if (max_nodes <= 0 || max_depth <= 0) return draft;
  std::vector<Candidate> cands;
  Candidates(&cands);
  if (cands.empty()) return draft;
  draft.match = cands.front().weight;  // the longest n-gram comes first
  // The trie of the candidates' continuations; node 0 is the root (the sequence's last token).
  struct Node {
    int32_t token = -1, parent = -1, depth = 0, weight = 0;
    std::vector<int32_t> children;
  };
  std::vector<Node> trie(1);
  const int32_t depth_cap = std::min(max_depth, options_.max_depth);
  const int32_t len = static_cast<int32_t>(tokens_.size());
  for (const Candidate& c : cands) {
    int32_t at = 0;
    for (int32_t i = c.start; i < len && i - c.start < depth_cap; ++i) {
      int32_t next = -1;
      for (const int32_t ch : trie[static_cast<size_t>(at)].children) {
        if (trie[static_cast<size_t>(ch)].token == tokens_[static_cast<size_t>(i)]) next = ch;
      }
      if (next < 0) {
        next = static_cast<int32_t>(trie.size());
        trie.push_back({.token = tokens_[static_cast<size_t>(i)],
                        .parent = at,
                        .depth = trie[static_cast<size_t>(at)].depth + 1});
        trie[static_cast<size_t>(at)].children.push_back(next);
      }
      trie[static_cast<size_t>(next)].weight += c.weight;
      at = next;
    }
  }
  // The heaviest nodes: a node never outweighs its parent, and ties go to the shallower one, so
  // every chosen node's parent is chosen before it.
  std::vector<int32_t> order(trie.size() - 1);
  std::iota(order.begin(), order.end(), 1);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const Node &x = trie[static_cast<size_t>(a)], &y = trie[static_cast<size_t>(b)];
    return x.weight != y.weight ? x.weight > y.weight : x.depth < y.depth;
  });
  std::vector<char> chosen(trie.size(), 0);
  const size_t take = std::min(order.size(), static_cast<size_t>(max_nodes));
  for (size_t i = 0; i < take; ++i) chosen[static_cast<size_t>(order[i])] = 1;
  // Depth-first, heaviest child first; a node's draft index is its place in this order.
  std::vector<int32_t> index(trie.size(), -1);
  std::vector<int32_t> stack;
  auto push_children = [&](int32_t node) {
    std::vector<int32_t> kids;
    for (const int32_t ch : trie[static_cast<size_t>(node)].children) {
      if (chosen[static_cast<size_t>(ch)]) kids.push_back(ch);
    }
    std::stable_sort(kids.begin(), kids.end(), [&](int32_t a, int32_t b) {
      return trie[static_cast<size_t>(a)].weight > trie[static_cast<size_t>(b)].weight;
    });
    for (auto k = kids.rbegin(); k != kids.rend(); ++k) stack.push_back(*k);
  };
  push_children(0);
  while (!stack.empty()) {
    const int32_t node = stack.back();
    stack.pop_back();
    const Node& nd = trie[static_cast<size_t>(node)];
    index[static_cast<size_t>(node)] = static_cast<int32_t>(draft.tokens.size());
    draft.tokens.push_back(nd.token);
    draft.parents.push_back(nd.parent == 0 ? -1 : index[static_cast<size_t>(nd.parent)]);
    push_children(node);
  }
  return draft;
}

}  // namespace gannet::engine
