#include "grammar/mask_cache.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "grammar/strict_utf8.h"

namespace gannet::grammar {
namespace {

std::string EncodeUtf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace

MaskCache::MaskCache(std::shared_ptr<const TokenVocabulary> vocab,
                     std::shared_ptr<const Grammar> grammar, const MaskCacheOptions& options)
    : vocab_(std::move(vocab)), grammar_(std::move(grammar)), options_(options) {
  options_.max_classes = std::min<size_t>(options_.max_classes, 32);
}

uint32_t MaskCache::Signature(const Classes& k, uint32_t cp) const {
  uint32_t sig = 0;
  for (size_t i = 0; i < k.size(); ++i) {
    if (grammar_->ClassContains(k[i], cp)) sig |= 1u << i;
  }
  return sig;
}

std::shared_ptr<const MaskCache::ClassEntry> MaskCache::GetClassEntry(const Classes& k) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = class_entries_.find(k);
    if (it != class_entries_.end()) return it->second;
    if (full_) return nullptr;
  }
  auto entry = std::make_shared<ClassEntry>();
  std::map<uint32_t, uint32_t> first;  // signature -> its first code point
  for (uint32_t cp : vocab_->code_points_) {
    uint32_t sig = Signature(k, cp);
    if (sig != 0) first.try_emplace(sig, cp);
  }
  entry->signatures.assign(first.begin(), first.end());
  size_t bytes = entry->signatures.size() * 8 + k.size() * 4;
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = class_entries_.try_emplace(k, entry);
  if (inserted) {
    if (bytes_ + bytes > options_.max_bytes) {
      class_entries_.erase(it);
      full_ = true;
      return entry;
    }
    bytes_ += bytes;
  }
  return it->second;
}

std::shared_ptr<const MaskCache::LoopEntry> MaskCache::GetLoopEntry(
    const Classes& k, const std::vector<uint32_t>& loops) const {
  auto key = std::make_pair(k, loops);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = loop_entries_.find(key);
    if (it != loop_entries_.end()) return it->second;
    if (full_) return nullptr;
  }
  auto entry = std::make_shared<LoopEntry>();
  entry->accepted.assign(vocab_->mask_words(), 0);
  // Signatures of ASCII looked up, the rest computed.
  uint32_t ascii[128];
  for (uint32_t c = 0; c < 128; ++c) ascii[c] = Signature(k, c);
  std::vector<std::pair<std::string_view, int32_t>> rests;
  for (size_t id = 0; id < vocab_->size(); ++id) {
    const std::string& t = vocab_->tokens_[id];
    if (t.empty() || vocab_->is_eog(static_cast<int32_t>(id))) continue;
    size_t i = 0;
    uint32_t cp;
    for (size_t n; i < t.size() && (n = DecodeStrict(t, i, &cp)) > 0; i += n) {
      uint32_t sig = cp < 128 ? ascii[cp] : Signature(k, cp);
      if (!std::binary_search(loops.begin(), loops.end(), sig)) break;
    }
    if (i == t.size()) {
      entry->accepted[id >> 5] |= 1u << (id & 31);
    } else {
      rests.push_back({std::string_view(t).substr(i), static_cast<int32_t>(id)});
    }
  }
  entry->rests = ByteTrie::Build(std::move(rests));
  size_t bytes = entry->accepted.size() * 4 + entry->rests.bytes();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = loop_entries_.try_emplace(std::move(key), entry);
  if (inserted) {
    if (bytes_ + bytes > options_.max_bytes) {
      loop_entries_.erase(it);
      full_ = true;
      return entry;  // used once, not kept
    }
    bytes_ += bytes;
    ++stats_.entries;
  }
  return it->second;
}

bool MaskCache::Exact(const Matcher& matcher, std::span<uint32_t> bitmask, size_t* steps) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.exact;
  }
  return vocab_->trie_.OrAccepted(matcher, bitmask, matcher.options().max_mask_work, steps);
}

bool MaskCache::StateKey(const Matcher& matcher, std::string* key) {
  const Matcher::State& s = matcher.state();
  const MatcherOptions& o = matcher.options();
  std::vector<std::vector<uint32_t>> stacks;
  size_t positions = 0;
  for (int32_t top : s.tops) {
    std::vector<uint32_t>& stack = stacks.emplace_back();
    for (int32_t n = top; n != Matcher::kEmptyStack; n = matcher.parent(n)) {
      if (++positions > kMaxStateKey) return false;
      stack.push_back(matcher.position(n));
    }
  }
  std::sort(stacks.begin(), stacks.end());  // arena ids order the tops; content must not depend
  std::vector<uint32_t> words = {
      s.partial.bits,
      s.partial.remaining | uint32_t{s.partial.next_lo} << 8 | uint32_t{s.partial.next_hi} << 16,
      static_cast<uint32_t>(std::min<size_t>(o.max_stacks, UINT32_MAX)),
      static_cast<uint32_t>(std::min<size_t>(o.max_stack_depth, UINT32_MAX)),
      static_cast<uint32_t>(std::min<size_t>(o.max_expansion_steps, UINT32_MAX))};
  for (const std::vector<uint32_t>& stack : stacks) {
    words.push_back(static_cast<uint32_t>(stack.size()));
    words.insert(words.end(), stack.begin(), stack.end());
  }
  key->assign(reinterpret_cast<const char*>(words.data()), words.size() * sizeof(uint32_t));
  return true;
}

bool MaskCache::FillNextTokenMask(const Matcher& matcher, std::span<uint32_t> bitmask) const {
  const size_t words = vocab_->mask_words();
  std::fill(bitmask.begin(), bitmask.begin() + static_cast<ptrdiff_t>(words), 0u);
  if (matcher.IsComplete()) {
    for (int32_t id : vocab_->eog_ids_) bitmask[id >> 5] |= 1u << (id & 31);
  }
  if (!matcher.CanContinue()) return true;
  vocab_->OrSymbols(matcher, bitmask);
  size_t steps = 0;
  if (&matcher.grammar() != grammar_.get()) return Exact(matcher, bitmask, &steps);
  std::string key;
  const bool keyed = StateKey(matcher, &key);
  if (keyed) {
    std::shared_ptr<const std::vector<uint32_t>> whole;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = states_.find(key);
      if (it != states_.end()) {
        whole = it->second;
        ++stats_.whole;
      }
    }
    if (whole != nullptr) {
      std::copy(whole->begin(), whole->end(), bitmask.begin());
      return true;
    }
  }
  if (!FillUncached(matcher, bitmask, &steps)) return false;
  if (!keyed || steps <= options_.min_state_steps) return true;
  auto whole = std::make_shared<const std::vector<uint32_t>>(
      bitmask.begin(), bitmask.begin() + static_cast<ptrdiff_t>(words));
  const size_t bytes = words * sizeof(uint32_t) + key.size();
  std::lock_guard<std::mutex> lock(mu_);
  // At most half the budget, so that whole masks never crowd out the self-loop entries.
  if (full_ || state_bytes_ + bytes > options_.max_bytes / 2 ||
      bytes_ + bytes > options_.max_bytes) {
    return true;
  }
  if (states_.try_emplace(std::move(key), std::move(whole)).second) {
    bytes_ += bytes;
    state_bytes_ += bytes;
    ++stats_.states;
  }
  return true;
}

bool MaskCache::FillUncached(const Matcher& matcher, std::span<uint32_t> bitmask,
                             size_t* steps) const {
  *steps = 0;
  const Matcher::State& s = matcher.state();
  if (s.partial.remaining != 0) return Exact(matcher, bitmask, steps);
  Classes k;
  for (int32_t top : s.tops) {
    if (top != Matcher::kEmptyStack) k.push_back(grammar_->item(matcher.position(top)).arg);
  }
  std::sort(k.begin(), k.end());
  k.erase(std::unique(k.begin(), k.end()), k.end());
  if (k.size() > options_.max_classes) return Exact(matcher, bitmask, steps);
  std::shared_ptr<const ClassEntry> class_entry = GetClassEntry(k);
  if (class_entry == nullptr) return Exact(matcher, bitmask, steps);

  // L: the signatures whose step gives S back, stack for stack. Stepping depends only on the
  // signature, so one representative code point decides for all that share it.
  std::vector<uint32_t> loops;
  Matcher work = matcher;
  size_t mark = work.Mark();
  Matcher::State a, b;
  for (const auto& [sig, cp] : class_entry->signatures) {
    std::string bytes = EncodeUtf8(cp);
    const Matcher::State* in = &s;
    bool ok = true;
    for (char c : bytes) {
      Matcher::State* out = in == &a ? &b : &a;
      if (!(ok = work.StepByte(*in, static_cast<uint8_t>(c), out))) break;
      in = out;
    }
    if (ok && in->partial.remaining == 0 && in->tops == s.tops) loops.push_back(sig);
    work.Rollback(mark);
  }
  const uint64_t spent = work.work() - matcher.work();
  const uint64_t budget = matcher.options().max_mask_work;
  if (spent > budget) return false;
  if (loops.empty()) return Exact(matcher, bitmask, steps);
  std::shared_ptr<const LoopEntry> entry = GetLoopEntry(k, loops);
  if (entry == nullptr) return Exact(matcher, bitmask, steps);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.fast;
  }
  for (size_t w = 0; w < entry->accepted.size(); ++w) bitmask[w] |= entry->accepted[w];
  return entry->rests.OrAccepted(matcher, bitmask, budget - spent);
}

MaskCache::Stats MaskCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats st = stats_;
  st.bytes = bytes_;
  return st;
}

}  // namespace gannet::grammar
