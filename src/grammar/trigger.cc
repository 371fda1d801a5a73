// TriggerWatch: where a lazy grammar starts.
#include "grammar/trigger.h"

#include <algorithm>

namespace gannet::grammar {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

TriggerWatch::TriggerWatch(std::shared_ptr<const GrammarTriggers> triggers)
    : triggers_(std::move(triggers)) {
  for (const std::string& w : triggers_->words) keep_ = std::max(keep_, w.size() - 1);
  start_open_ = !triggers_->start_words.empty();
}

std::optional<TriggerWatch::Fire> TriggerWatch::Check(int32_t token, std::string_view bytes) const {
  if (fired_) return std::nullopt;
  const std::vector<int32_t>& ids = triggers_->tokens;
  if (std::find(ids.begin(), ids.end(), token) != ids.end()) return Fire{.by_token = true};
  if (start_open_) {
    std::string text = start_;
    for (char c : bytes) {
      if (!text.empty() || !IsBlank(c)) text.push_back(c);
    }
    for (const std::string& w : triggers_->start_words) {
      if (text.size() >= w.size() && text.compare(0, w.size(), w) == 0) return Fire{.text = text};
    }
  }
  if (triggers_->words.empty() || bytes.empty()) return std::nullopt;
  // tail_ is shorter than every word, so a match found here ends inside `bytes`.
  const std::string text = tail_ + std::string(bytes);
  size_t best = std::string::npos;
  for (const std::string& w : triggers_->words) best = std::min(best, text.find(w));
  if (best == std::string::npos) return std::nullopt;
  return Fire{.text = text.substr(best)};
}

bool TriggerWatch::Accepts(const TokenVocabulary& vocab, int32_t token, const Fire& fire,
                           Matcher* matcher) const {
  if (fire.by_token) return vocab.AcceptToken(matcher, token);
  return matcher->AcceptBytes(fire.text);
}

bool TriggerWatch::Observe(const TokenVocabulary& vocab, int32_t token, Matcher* matcher) {
  // Not `cond ? vocab.token(token) : ""`: its type is std::string, a temporary the view would
  // outlive (AddressSanitizer: stack-use-after-scope).
  std::string_view bytes;
  if (token >= 0 && static_cast<size_t>(token) < vocab.size()) bytes = vocab.token(token);
  if (std::optional<Fire> fire = Check(token, bytes)) {
    if (!Accepts(vocab, token, *fire, matcher)) return false;
    fired_ = true;
    tail_.clear();
    start_.clear();
    return true;
  }
  if (start_open_) {
    for (char c : bytes) {
      if (!start_.empty() || !IsBlank(c)) start_.push_back(c);
    }
    start_open_ = false;
    for (const std::string& w : triggers_->start_words) {
      // Still a proper prefix of a start word (or nothing but blanks so far).
      if (start_.size() < w.size() && w.compare(0, start_.size(), start_) == 0) start_open_ = true;
    }
    if (!start_open_) start_.clear();
  }
  if (keep_ > 0) {
    tail_.append(bytes);
    if (tail_.size() > keep_) tail_.erase(0, tail_.size() - keep_);
  }
  return true;
}

void TriggerWatch::OrRefused(const TokenVocabulary& vocab, const Matcher& matcher,
                             std::span<uint32_t> bitmask) const {
  for (size_t id = 0; id < vocab.size(); ++id) {
    const int32_t t = static_cast<int32_t>(id);
    if (vocab.is_eog(t)) continue;
    std::optional<Fire> fire = Check(t, vocab.token(t));
    if (!fire) continue;
    Matcher trial = matcher;
    if (!Accepts(vocab, t, *fire, &trial)) bitmask[id >> 5] |= 1u << (id & 31);
  }
}

}  // namespace gannet::grammar
