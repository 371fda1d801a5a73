#include "grammar/token_mask.h"

#include <algorithm>
#include <numeric>
#include <string_view>
#include <utility>

namespace gannet::grammar {

Result<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::Create(
    std::vector<std::string> tokens, std::span<const int32_t> eog_ids) {
  std::shared_ptr<TokenVocabulary> v(new TokenVocabulary());
  v->is_eog_.assign(tokens.size(), false);
  for (int32_t id : eog_ids) {
    if (id < 0 || static_cast<size_t>(id) >= tokens.size()) {
      return Status::InvalidArgument("grammar vocabulary: end-of-generation id " +
                                     std::to_string(id) + " is outside the vocabulary of " +
                                     std::to_string(tokens.size()));
    }
    if (!v->is_eog_[id]) v->eog_ids_.push_back(id);
    v->is_eog_[id] = true;
  }
  v->tokens_ = std::move(tokens);

  // The trie from the tokens in byte order: a node's children are then contiguous runs, built
  // with an explicit path of open nodes.
  std::vector<int32_t> order;
  for (size_t i = 0; i < v->tokens_.size(); ++i) {
    if (!v->is_eog_[i] && !v->tokens_[i].empty()) order.push_back(static_cast<int32_t>(i));
  }
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return v->tokens_[a] < v->tokens_[b]; });
  // Temporary nodes: children listed as (byte, node) in insertion (= byte) order.
  struct Temp {
    std::vector<std::pair<uint8_t, uint32_t>> children;
    std::vector<int32_t> ends;
  };
  std::vector<Temp> temp(1);
  std::vector<uint32_t> path = {0};  // path[d]: the node of the previous token's first d bytes
  std::string_view prev;
  for (int32_t id : order) {
    std::string_view t = v->tokens_[id];
    v->max_token_bytes_ = std::max(v->max_token_bytes_, t.size());
    size_t common = 0;
    while (common < prev.size() && common < t.size() && prev[common] == t[common]) ++common;
    path.resize(std::min(path.size(), common + 1));
    for (size_t d = common; d < t.size(); ++d) {
      auto node = static_cast<uint32_t>(temp.size());
      temp.emplace_back();
      temp[path[d]].children.push_back({static_cast<uint8_t>(t[d]), node});
      path.push_back(node);
    }
    temp[path[t.size()]].ends.push_back(id);
    prev = t;
  }
  v->nodes_.resize(temp.size());
  for (size_t n = 0; n < temp.size(); ++n) {
    Node& node = v->nodes_[n];
    node.first_edge = static_cast<uint32_t>(v->edge_bytes_.size());
    node.num_edges = static_cast<uint32_t>(temp[n].children.size());
    for (auto [byte, child] : temp[n].children) {
      v->edge_bytes_.push_back(byte);
      v->edge_targets_.push_back(child);
    }
    node.first_token = static_cast<uint32_t>(v->node_tokens_.size());
    node.num_tokens = static_cast<uint32_t>(temp[n].ends.size());
    v->node_tokens_.insert(v->node_tokens_.end(), temp[n].ends.begin(), temp[n].ends.end());
  }
  return std::shared_ptr<const TokenVocabulary>(std::move(v));
}

void TokenVocabulary::FillNextTokenMask(const Matcher& matcher, std::span<uint32_t> bitmask) const {
  std::fill(bitmask.begin(), bitmask.begin() + static_cast<ptrdiff_t>(mask_words()), 0u);
  if (matcher.IsComplete()) {
    for (int32_t id : eog_ids_) bitmask[id >> 5] |= 1u << (id & 31);
  }
  if (!matcher.CanContinue()) return;

  Matcher work = matcher;  // scratch: the walk adds stack nodes and rolls them back
  std::vector<Matcher::State> states(max_token_bytes_ + 1);
  states[0] = matcher.state();
  struct Frame {
    uint32_t node;
    uint32_t next_edge;
    size_t mark;  // arena size when the frame's state was made
  };
  std::vector<Frame> frames;
  frames.reserve(max_token_bytes_ + 1);
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
    if (!work.StepByte(states[depth - 1], edge_bytes_[edge], &states[depth])) {
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
}

bool TokenVocabulary::AcceptToken(Matcher* matcher, int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return false;
  if (is_eog_[id]) return matcher->IsComplete();
  if (tokens_[id].empty()) return false;
  return matcher->AcceptBytes(tokens_[id]);
}

}  // namespace gannet::grammar
