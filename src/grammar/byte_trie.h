// ByteTrie: a byte trie over token strings, and the walk that marks which of them a matcher
// accepts.
//
// TokenVocabulary (grammar/token_mask.h) keeps one over the whole vocabulary; MaskCache
// (grammar/mask_cache.h) keeps smaller ones over token suffixes. Immutable once built.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "grammar/matcher.h"

namespace gannet::grammar {

class ByteTrie {
 public:
  // entries: (bytes, token id); empty byte strings are skipped. The views need not outlive Build.
  static ByteTrie Build(std::vector<std::pair<std::string_view, int32_t>> entries);

  // ORs into `bitmask` bit id for every entry whose bytes `matcher` would accept from its state
  // (exactly Matcher::AcceptBytes, limits included). The walk goes depth first stepping a scratch
  // copy of the state one byte per edge, every live stack at once, and prunes a subtree at its
  // first rejected byte; stack nodes made in a subtree are rolled back as the walk leaves it.
  // False when the walk would do more than `max_work` (Matcher::work() units): the bits set so
  // far are then a subset of the answer. `byte_steps` (optional) gets the number of byte steps
  // taken, the walk's cost. REQUIRES: every id < 32 * bitmask.size().
  [[nodiscard]] bool OrAccepted(const Matcher& matcher, std::span<uint32_t> bitmask,
                                uint64_t max_work, size_t* byte_steps = nullptr) const;

  size_t num_nodes() const { return nodes_.size(); }
  // Heap bytes held, for cache budgets.
  size_t bytes() const {
    return nodes_.size() * sizeof(Node) + edge_bytes_.size() * (1 + sizeof(uint32_t)) +
           node_tokens_.size() * sizeof(int32_t);
  }

 private:
  struct Node {
    uint32_t first_edge = 0;  // into edge_bytes_ / edge_targets_
    uint32_t num_edges = 0;
    uint32_t first_token = 0;  // into node_tokens_: the entries that end at this node
    uint32_t num_tokens = 0;
  };

  std::vector<Node> nodes_;  // nodes_[0] is the root (the empty prefix)
  std::vector<uint8_t> edge_bytes_;
  std::vector<uint32_t> edge_targets_;
  std::vector<int32_t> node_tokens_;
  size_t max_depth_ = 0;
};

}  // namespace gannet::grammar
