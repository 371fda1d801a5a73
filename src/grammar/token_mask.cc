#include "grammar/token_mask.h"

#include <algorithm>
#include <numeric>
#include <string_view>
#include <utility>

#include "grammar/strict_utf8.h"

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

  std::vector<std::pair<std::string_view, int32_t>> entries;
  for (size_t i = 0; i < v->tokens_.size(); ++i) {
    if (!v->is_eog_[i]) entries.push_back({v->tokens_[i], static_cast<int32_t>(i)});
  }
  v->trie_ = ByteTrie::Build(std::move(entries));
  std::vector<uint64_t> seen(0x110000 / 64);  // a set of code points, 136 KiB for a moment
  for (const std::string& t : v->tokens_) {
    uint32_t cp;
    for (size_t i = 0, n; i < t.size() && (n = DecodeStrict(t, i, &cp)) > 0; i += n) {
      seen[cp >> 6] |= uint64_t{1} << (cp & 63);
    }
  }
  for (uint32_t w = 0; w < seen.size(); ++w) {
    for (uint64_t bits = seen[w]; bits != 0; bits &= bits - 1) {
      v->code_points_.push_back(w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits)));
    }
  }
  return std::shared_ptr<const TokenVocabulary>(std::move(v));
}

bool TokenVocabulary::FillNextTokenMask(const Matcher& matcher, std::span<uint32_t> bitmask) const {
  std::fill(bitmask.begin(), bitmask.begin() + static_cast<ptrdiff_t>(mask_words()), 0u);
  if (matcher.IsComplete()) {
    for (int32_t id : eog_ids_) bitmask[id >> 5] |= 1u << (id & 31);
  }
  if (!matcher.CanContinue()) return true;
  if (!trie_.OrAccepted(matcher, bitmask, matcher.options().max_mask_work)) return false;
  OrSymbols(matcher, bitmask);
  return true;
}

void TokenVocabulary::OrSymbols(const Matcher& matcher, std::span<uint32_t> bitmask) const {
  const Matcher::State& s = matcher.state();
  if (s.partial.remaining != 0) return;
  const Grammar& g = matcher.grammar();
  std::vector<int32_t> candidates;
  for (int32_t top : s.tops) {
    if (top == Matcher::kEmptyStack) continue;
    const CharClass& cls = g.char_class(g.item(matcher.position(top)).arg);
    if (cls.negated) continue;  // never holds a symbol
    for (const CharRange& r : cls.ranges) {
      if (r.hi < kTokenSymbolBase) continue;
      const uint64_t lo = std::max(r.lo, kTokenSymbolBase) - kTokenSymbolBase;
      const uint64_t hi = std::min<uint64_t>(r.hi - kTokenSymbolBase, tokens_.size() - 1);
      for (uint64_t id = lo; id <= hi && id < tokens_.size(); ++id) {
        if (is_symbol(static_cast<int32_t>(id))) candidates.push_back(static_cast<int32_t>(id));
      }
    }
  }
  if (candidates.empty()) return;
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  for (int32_t id : candidates) {
    Matcher trial = matcher;  // rare (only where a grammar names a token): a copy per candidate
    if (trial.AcceptCodepoint(kTokenSymbolBase + static_cast<uint32_t>(id)))
      bitmask[id >> 5] |= 1u << (id & 31);
  }
}

bool TokenVocabulary::AcceptToken(Matcher* matcher, int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return false;
  if (is_eog_[id]) return matcher->IsComplete();
  if (tokens_[id].empty())
    return matcher->AcceptCodepoint(kTokenSymbolBase + static_cast<uint32_t>(id));
  return matcher->AcceptBytes(tokens_[id]);
}

}  // namespace gannet::grammar
