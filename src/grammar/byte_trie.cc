#include "grammar/byte_trie.h"

#include <algorithm>

namespace gannet::grammar {

ByteTrie ByteTrie::Build(std::vector<std::pair<std::string_view, int32_t>> entries) {
  ByteTrie trie;
  std::erase_if(entries, [](const auto& e) { return e.first.empty(); });
  // In byte order a node's children are contiguous runs, built with an explicit path of open
  // nodes.
  std::sort(entries.begin(), entries.end());
  struct Temp {
    std::vector<std::pair<uint8_t, uint32_t>> children;  // (byte, node) in byte order
    std::vector<int32_t> ends;
  };
  std::vector<Temp> temp(1);
  std::vector<uint32_t> path = {0};  // path[d]: the node of the previous entry's first d bytes
  std::string_view prev;
  for (const auto& [t, id] : entries) {
    trie.max_depth_ = std::max(trie.max_depth_, t.size());
    size_t common = 0;
    while (common < prev.size() && common < t.size() && prev[common] == t[common]) ++common;
    path.resize(std::min(path.size(), common + 1));
    for (size_t d = path.size() - 1; d < t.size(); ++d) {
      auto node = static_cast<uint32_t>(temp.size());
      temp.emplace_back();
      temp[path[d]].children.push_back({static_cast<uint8_t>(t[d]), node});
      path.push_back(node);
    }
    temp[path[t.size()]].ends.push_back(id);
    prev = t;
  }
  trie.nodes_.resize(temp.size());
  for (size_t n = 0; n < temp.size(); ++n) {
    Node& node = trie.nodes_[n];
    node.first_edge = static_cast<uint32_t>(trie.edge_bytes_.size());
    node.num_edges = static_cast<uint32_t>(temp[n].children.size());
    for (auto [byte, child] : temp[n].children) {
      trie.edge_bytes_.push_back(byte);
      trie.edge_targets_.push_back(child);
    }
    node.first_token = static_cast<uint32_t>(trie.node_tokens_.size());
    node.num_tokens = static_cast<uint32_t>(temp[n].ends.size());
    trie.node_tokens_.insert(trie.node_tokens_.end(), temp[n].ends.begin(), temp[n].ends.end());
  }
  return trie;
}

bool ByteTrie::OrAccepted(const Matcher& matcher, std::span<uint32_t> bitmask, uint64_t max_work,
                          size_t* byte_steps) const {
  size_t steps = 0;
  if (byte_steps != nullptr) *byte_steps = 0;
  if (nodes_[0].num_edges == 0) return true;
  Matcher work = matcher;  // scratch: the walk adds stack nodes and rolls them back
  const uint64_t work_end = matcher.work() + max_work;
  std::vector<Matcher::State> states(max_depth_ + 1);
  states[0] = matcher.state();
  struct Frame {
    uint32_t node;
    uint32_t next_edge;
    size_t mark;  // arena size when the frame's state was made
  };
  std::vector<Frame> frames;
  frames.reserve(max_depth_ + 1);
  frames.push_back({0, 0, work.Mark()});
  while (!frames.empty()) {
    Frame& f = frames.back();
    const Node& node = nodes_[f.node];
    if (f.next_edge == node.num_edges) {
      work.Rollback(f.mark);
      frames.pop_back();
      continue;
    }
    uint32_t edge = node.first_edge + f.next_edge++;
    size_t depth = frames.size();
    size_t mark = work.Mark();
    ++steps;
    const bool stepped = work.StepByte(states[depth - 1], edge_bytes_[edge], &states[depth]);
    if (work.work() > work_end) return false;
    if (!stepped) {
      work.Rollback(mark);
      continue;
    }
    uint32_t child = edge_targets_[edge];
    const Node& c = nodes_[child];
    for (uint32_t i = 0; i < c.num_tokens; ++i) {
      int32_t id = node_tokens_[c.first_token + i];
      bitmask[id >> 5] |= 1u << (id & 31);
    }
    if (c.num_edges > 0) {
      frames.push_back({child, 0, mark});
    } else {
      work.Rollback(mark);
    }
  }
  if (byte_steps != nullptr) *byte_steps = steps;
  return true;
}

}  // namespace gannet::grammar
