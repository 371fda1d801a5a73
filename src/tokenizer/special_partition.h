// SpecialPartitioner: splits a text into special tokens and the raw runs between them, with the
// result of llama.cpp's rule (tokenizer_st_partition) in time linear in the text.
//
// The rule: special token texts are taken one token at a time in a fixed order (longest text
// first); each token's occurrences are cut out of the raw runs left so far, left to right and
// without overlap; a token with lstrip / rstrip also takes the ASCII spaces beside it in its run.
// Done as written, that visits every raw run once per special token: Gemma 3 has 6414 special
// tokens, so a prompt of many short runs cost thousands of passes over the text.
//
// Here the text is walked once through a trie of the special texts, keeping, for each position
// where one starts, the deepest trie node reached (every shorter match there is on its path).
// Then the texts are taken by length, longest first; within a length, in the given order, each
// left to right. A claimed byte (a token's or a stripped space) is never claimed again, and a
// candidate occurrence only needs its first and last byte checked: any claim overlapping it comes
// from a text at least as long, so it covers one of them. The result is the same as the rule's
// (`tests/unit/tokenizer/special_partition_test.cc` compares them on random vocabularies and
// texts). Cost: one trie walk per position (at most the longest special text), and per distinct
// special length one pass over the positions where a special text starts.
//
// Thread-safety: immutable after construction; Partition may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gannet {

class SpecialPartitioner {
 public:
  struct Special {
    int32_t id = 0;           // the token id a match produces
    std::string text;         // not empty; texts are distinct
    bool parse_only = false;  // control / unknown: matched only when parse_special
    bool lstrip = false, rstrip = false;
  };
  // `specials` in matching order (the order ties between equal lengths are broken by).
  explicit SpecialPartitioner(std::vector<Special> specials);

  struct Fragment {
    int32_t token;  // -1 for raw text
    size_t offset;  // raw text only
    size_t length;
  };
  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;

 private:
  struct Node {
    int32_t edge_begin = 0, edge_end = 0;    // edges_[begin, end): children, sorted by byte
    int32_t chain_begin = 0, chain_end = 0;  // chain_[begin, end): the specials ending on the
                                             // path from the root to here, shortest first
  };
  struct Edge {
    uint8_t byte;
    int32_t node;
  };
  int32_t Child(int32_t node, uint8_t byte) const;  // -1 if none
  // The deepest node on text[pos..]'s path whose chain is not empty, or -1.
  int32_t Walk(std::string_view text, size_t pos) const;
  // The special (index into specials_) of length `len` on node's path, or -1.
  int32_t SpecialOfLength(int32_t node, size_t len) const;

  std::vector<Special> specials_;  // in matching order: the index is the rank
  std::vector<Node> nodes_;        // [0] is the root
  std::vector<Edge> edges_;
  std::vector<int32_t> chain_;
  std::vector<size_t> lengths_;  // distinct special text lengths, longest first
};

}  // namespace gannet
