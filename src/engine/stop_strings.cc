#include "engine/stop_strings.h"

#include <deque>
#include <utility>

namespace gannet::engine {

Result<std::shared_ptr<const StopStrings>> StopStrings::Compile(
    const std::vector<std::string>& stops) {
  size_t count = 0, bytes = 0;
  for (const std::string& s : stops) {
    count += s.empty() ? 0 : 1;
    bytes += s.size();
  }
  if (count > kMaxStopStrings) {
    return Status::InvalidArgument("at most " + std::to_string(kMaxStopStrings) +
                                   " stop strings, got " + std::to_string(count));
  }
  if (bytes > kMaxStopBytes) {
    return Status::InvalidArgument("stop strings may have at most " +
                                   std::to_string(kMaxStopBytes) + " bytes in all, got " +
                                   std::to_string(bytes));
  }
  std::shared_ptr<StopStrings> a(new StopStrings());
  for (const std::string& s : stops) {
    for (const char ch : s) {
      uint16_t& c = a->class_of_[static_cast<unsigned char>(ch)];
      if (c == 0) c = static_cast<uint16_t>(a->n_classes_++);
    }
  }
  const int32_t nc = a->n_classes_;
  if ((bytes + 1) * static_cast<size_t>(nc) > kMaxStopTableCells) {
    return Status::InvalidArgument(
        "stop strings too varied for the matcher: " + std::to_string(bytes) + " bytes over " +
        std::to_string(nc - 1) + " distinct byte values (bytes x distinct values at most " +
        std::to_string(kMaxStopTableCells) + ")");
  }
  // The trie: `next` holds child links (-1: none) until the breadth-first pass fills the rest.
  std::vector<int32_t> next(static_cast<size_t>(nc), -1);
  a->depth_.assign(1, 0);
  a->match_.assign(1, 0);
  for (const std::string& s : stops) {
    if (s.empty()) continue;
    int32_t state = 0;
    for (const char ch : s) {
      const size_t slot =
          static_cast<size_t>(state) * nc + a->class_of_[static_cast<unsigned char>(ch)];
      if (next[slot] < 0) {
        const int32_t child = static_cast<int32_t>(a->depth_.size());
        next[slot] = child;
        next.resize(next.size() + static_cast<size_t>(nc), -1);
        a->depth_.push_back(a->depth_[state] + 1);
        a->match_.push_back(0);
      }
      state = next[slot];
    }
    a->match_[state] = static_cast<int32_t>(s.size());
  }
  // Failure links in breadth-first order turn the trie into a full transition table; a state's
  // longest stop string is its own (when it ends one) or its failure state's.
  std::vector<int32_t> fail(a->depth_.size(), 0);
  std::deque<int32_t> queue;
  for (int32_t c = 0; c < nc; ++c) {
    int32_t& t = next[static_cast<size_t>(c)];
    if (t < 0) {
      t = 0;
    } else {
      queue.push_back(t);
    }
  }
  while (!queue.empty()) {
    const int32_t u = queue.front();
    queue.pop_front();
    if (a->match_[u] == 0) a->match_[u] = a->match_[fail[u]];
    for (int32_t c = 0; c < nc; ++c) {
      const size_t slot = static_cast<size_t>(u) * nc + c;
      const int32_t via_fail = next[static_cast<size_t>(fail[u]) * nc + c];
      if (next[slot] < 0) {
        next[slot] = via_fail;
      } else {
        fail[next[slot]] = via_fail;
        queue.push_back(next[slot]);
      }
    }
  }
  a->next_.assign(next.begin(), next.end());  // states <= kMaxStopBytes + 1 fit 16 bits
  return std::shared_ptr<const StopStrings>(std::move(a));
}

std::string StopMatcher::Push(std::string_view text) {
  if (matched_) return {};
  if (stops_ == nullptr || stops_->empty()) return std::string(text);
  std::string out;
  for (const char ch : text) {
    state_ = stops_->Step(state_, static_cast<unsigned char>(ch));
    held_.push_back(ch);
    if (const int32_t len = stops_->match_[state_]; len > 0) {
      matched_ = true;
      out.append(held_, held_begin_, held_.size() - static_cast<size_t>(len) - held_begin_);
      held_.clear();
      held_begin_ = 0;
      return out;
    }
  }
  // Everything before the longest tail that may still grow into a stop string is safe.
  const size_t end = held_.size() - static_cast<size_t>(stops_->depth_[state_]);
  out.append(held_, held_begin_, end - held_begin_);
  held_begin_ = end;
  if (held_begin_ * 2 >= held_.size()) {
    held_.erase(0, held_begin_);
    held_begin_ = 0;
  }
  return out;
}

std::string StopMatcher::Flush() {
  if (matched_) return {};
  std::string out = held_.substr(held_begin_);
  held_.clear();
  held_begin_ = 0;
  state_ = 0;
  return out;
}

}  // namespace gannet::engine
