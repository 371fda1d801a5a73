// Lookup structures shared by the SPM and BPE encoders (internal to tokenizer/).
//
// Thread-safety: immutable after construction; concurrent lookups are fine.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace gannet {

struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Token text -> id, looked up with string_views into the text being encoded.
using TokenMap = std::unordered_map<std::string, int32_t, TransparentStringHash, std::equal_to<>>;

inline int32_t FindId(const TokenMap& map, std::string_view text) {
  const auto it = map.find(text);
  return it == map.end() ? -1 : it->second;
}

// BPE merge ranks: (left, right) -> position in tokenizer.ggml.merges.
class BpeRanks {
 public:
  // `merge` is "left right", split at the first space after index 0 (llama.cpp convention);
  // a merge without such a space is registered as ("", ""). An earlier rank wins over a duplicate.
  void Add(std::string_view merge, int32_t rank);
  // -1 when the pair is not a merge.
  int32_t Find(std::string_view left, std::string_view right) const;
  size_t size() const { return ranks_.size(); }

 private:
  static void MakeKey(std::string_view left, std::string_view right, std::string* key);
  std::unordered_map<std::string, int32_t, TransparentStringHash, std::equal_to<>> ranks_;
};

}  // namespace gannet
