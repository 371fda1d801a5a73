// Special-token partitioning in linear time (special_partition.h).
#include "tokenizer/special_partition.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <map>

#include "base/status.h"

namespace gannet {
namespace {

bool IsAsciiSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

}  // namespace

SpecialPartitioner::SpecialPartitioner(std::vector<Special> specials)
    : specials_(std::move(specials)) {
  // A trie with std::map children first, flattened into sorted edge ranges below.
  struct Building {
    std::map<uint8_t, int32_t> children;
    int32_t special = -1;
  };
  std::vector<Building> b(1);
  for (size_t i = 0; i < specials_.size(); ++i) {
    const std::string& t = specials_[i].text;
    GANNET_CHECK(!t.empty());
    GANNET_CHECK(i == 0 || t.size() <= specials_[i - 1].text.size());  // longest first
    int32_t node = 0;
    for (const char c : t) {
      const uint8_t byte = static_cast<uint8_t>(c);
      auto it = b[node].children.find(byte);
      if (it == b[node].children.end()) {
        it = b[node].children.emplace(byte, static_cast<int32_t>(b.size())).first;
        b.emplace_back();
      }
      node = it->second;
    }
    GANNET_CHECK(b[node].special < 0);  // texts are distinct
    b[node].special = static_cast<int32_t>(i);
    if (lengths_.empty() || lengths_.back() != t.size()) lengths_.push_back(t.size());
  }
  // Depth-first, so that a node's chain is its parent's plus its own special.
  nodes_.resize(b.size());
  std::vector<std::pair<int32_t, int32_t>> stack = {{0, -1}};  // (node, parent)
  while (!stack.empty()) {
    const auto [n, parent] = stack.back();
    stack.pop_back();
    Node& node = nodes_[n];
    node.chain_begin = static_cast<int32_t>(chain_.size());
    if (parent >= 0) {
      const Node& p = nodes_[parent];
      for (int32_t k = p.chain_begin; k < p.chain_end; ++k) chain_.push_back(chain_[k]);
    }
    if (b[n].special >= 0) chain_.push_back(b[n].special);
    node.chain_end = static_cast<int32_t>(chain_.size());
    node.edge_begin = static_cast<int32_t>(edges_.size());
    for (const auto& [byte, child] : b[n].children) {
      edges_.push_back({byte, child});
      stack.emplace_back(child, n);
    }
    node.edge_end = static_cast<int32_t>(edges_.size());
  }
}

int32_t SpecialPartitioner::Child(int32_t node, uint8_t byte) const {
  const Node& n = nodes_[node];
  const auto first = edges_.begin() + n.edge_begin, last = edges_.begin() + n.edge_end;
  const auto it =
      std::lower_bound(first, last, byte, [](const Edge& e, uint8_t v) { return e.byte < v; });
  return it != last && it->byte == byte ? it->node : -1;
}

int32_t SpecialPartitioner::Walk(std::string_view text, size_t pos) const {
  int32_t node = 0, deepest = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    node = Child(node, static_cast<uint8_t>(text[i]));
    if (node < 0) break;
    if (nodes_[node].chain_end > nodes_[node].chain_begin) deepest = node;
  }
  return deepest;
}

int32_t SpecialPartitioner::SpecialOfLength(int32_t node, size_t len) const {
  const Node& n = nodes_[node];
  const auto first = chain_.begin() + n.chain_begin, last = chain_.begin() + n.chain_end;
  // The chain is sorted by length, ascending.
  const auto it = std::lower_bound(first, last, len, [&](int32_t s, size_t v) {
    return specials_[static_cast<size_t>(s)].text.size() < v;
  });
  return it != last && specials_[static_cast<size_t>(*it)].text.size() == len ? *it : -1;
}

std::vector<SpecialPartitioner::Fragment> SpecialPartitioner::Partition(std::string_view text,
                                                                        bool parse_special) const {
  std::vector<Fragment> out;
  if (text.empty()) return out;
  // Where a special text starts: (position, deepest node with a match there).
  std::vector<std::pair<size_t, int32_t>> starts;
  if (!specials_.empty()) {
    for (size_t p = 0; p < text.size(); ++p) {
      if (const int32_t node = Walk(text, p); node >= 0) starts.emplace_back(p, node);
    }
  }
  struct Taken {
    size_t begin, end;  // claimed bytes: the token and the spaces it strips
    int32_t id;
  };
  std::vector<Taken> taken;
  std::vector<uint8_t> claimed(starts.empty() ? 0 : text.size(), 0);
  std::vector<std::pair<int32_t, size_t>> candidates;  // (special, position)
  for (const size_t len : lengths_) {
    candidates.clear();
    for (const auto& [p, node] : starts) {
      if (p + len > text.size() || claimed[p + len - 1]) continue;
      const int32_t s = SpecialOfLength(node, len);
      if (s < 0 || (!parse_special && specials_[static_cast<size_t>(s)].parse_only)) continue;
      candidates.emplace_back(s, p);
    }
    // Within a length, special by special in their order, each left to right (stable: starts
    // are in position order).
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [s, p] : candidates) {
      // Any claim overlapping [p, p + len) covers one of its ends (see the header).
      if (claimed[p] || claimed[p + len - 1]) continue;
      const Special& sp = specials_[static_cast<size_t>(s)];
      size_t begin = p, end = p + len;
      if (sp.lstrip) {
        while (begin > 0 && !claimed[begin - 1] && IsAsciiSpace(text[begin - 1])) --begin;
      }
      if (sp.rstrip) {
        while (end < text.size() && !claimed[end] && IsAsciiSpace(text[end])) ++end;
      }
      std::fill(claimed.begin() + static_cast<std::ptrdiff_t>(begin),
                claimed.begin() + static_cast<std::ptrdiff_t>(end), 1);
      taken.push_back({begin, end, sp.id});
    }
    // A start inside a claim never matches again: drop it, so that every start is visited by at
    // most the lengths before it was claimed.
    std::erase_if(starts, [&](const auto& st) { return claimed[st.first] != 0; });
  }
  std::sort(taken.begin(), taken.end(),
            [](const Taken& a, const Taken& b) { return a.begin < b.begin; });
  size_t cursor = 0;
  for (const Taken& t : taken) {
    if (t.begin > cursor) out.push_back({-1, cursor, t.begin - cursor});
    out.push_back({t.id, 0, 0});
    cursor = t.end;
  }
  if (cursor < text.size()) out.push_back({-1, cursor, text.size() - cursor});
  return out;
}

}  // namespace gannet
