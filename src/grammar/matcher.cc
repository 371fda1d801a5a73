#include "grammar/matcher.h"

#include <algorithm>
#include <utility>

namespace gannet::grammar {
namespace {

uint64_t Key(uint32_t pos, int32_t parent) {
  return (uint64_t{pos} << 32) | static_cast<uint32_t>(parent + 1);
}

}  // namespace

Result<Matcher> Matcher::Create(std::shared_ptr<const Grammar> grammar,
                                const MatcherOptions& options) {
  if (grammar == nullptr) return Status::InvalidArgument("grammar matcher: no grammar");
  Matcher m(std::move(grammar), options);
  m.steps_ = 0;
  bool ok = true;
  for (uint32_t alt : m.grammar_->alternatives(m.grammar_->root())) {
    if (!(ok = m.Expand(alt, kEmptyStack, &m.state_.tops))) break;
  }
  if (!ok || !m.Finish(&m.state_.tops)) {
    return Status::ResourceExhausted("grammar matcher: the grammar's start state needs more than " +
                                     std::to_string(options.max_stacks) +
                                     " stacks (or deeper stacks or more expansion steps "
                                     "than allowed); simplify its alternatives");
  }
  m.compacted_size_ = m.nodes_.size();
  return m;
}

int32_t Matcher::Intern(uint32_t pos, int32_t parent) {
  auto [it, inserted] = index_.try_emplace(Key(pos, parent), static_cast<int32_t>(nodes_.size()));
  if (!inserted) return it->second;
  uint32_t depth = parent == kEmptyStack ? 1 : nodes_[parent].depth + 1;
  if (depth > options_.max_stack_depth) {
    index_.erase(it);
    return kTooDeep;
  }
  nodes_.push_back({pos, parent, depth});
  return it->second;
}

void Matcher::Rollback(size_t mark) {
  for (size_t i = nodes_.size(); i > mark; --i)
    index_.erase(Key(nodes_[i - 1].pos, nodes_[i - 1].parent));
  nodes_.resize(mark);
}

bool Matcher::Expand(uint32_t pos, int32_t parent, std::vector<int32_t>* out) {
  const Grammar& g = *grammar_;
  work_.clear();
  work_.push_back({pos, parent});
  while (!work_.empty()) {
    auto [p, par] = work_.back();
    work_.pop_back();
    ++work_done_;
    if (++steps_ > options_.max_expansion_steps) {
      limit_exceeded_ = true;
      return false;
    }
    const Grammar::Item& item = g.item(p);
    switch (item.kind) {
      case Grammar::Item::Kind::kChars: {
        int32_t id = Intern(p, par);
        if (id == kTooDeep) {
          limit_exceeded_ = true;
          return false;
        }
        out->push_back(id);
        break;
      }
      case Grammar::Item::Kind::kEnd:
        if (par == kEmptyStack) {
          out->push_back(kEmptyStack);
        } else {
          work_.push_back({nodes_[par].pos, nodes_[par].parent});
        }
        break;
      case Grammar::Item::Kind::kRule: {
        // Where to go on when the referenced rule ends; nothing to push when that is the end of
        // this alternative (a tail call).
        int32_t next_parent = par;
        if (g.item(p + 1).kind != Grammar::Item::Kind::kEnd) {
          next_parent = Intern(p + 1, par);
          if (next_parent == kTooDeep) {
            limit_exceeded_ = true;
            return false;
          }
        }
        for (uint32_t alt : g.alternatives(item.arg)) work_.push_back({alt, next_parent});
        break;
      }
    }
  }
  return true;
}

bool Matcher::Finish(std::vector<int32_t>* tops) {
  std::sort(tops->begin(), tops->end());
  tops->erase(std::unique(tops->begin(), tops->end()), tops->end());
  if (tops->size() > options_.max_stacks) {
    limit_exceeded_ = true;
    return false;
  }
  return true;
}

bool Matcher::StepCodepoint(const std::vector<int32_t>& tops, uint32_t cp,
                            std::vector<int32_t>* out) {
  out->clear();
  steps_ = 0;
  work_done_ += tops.size();
  for (int32_t top : tops) {
    if (top == kEmptyStack) continue;
    const Node node = nodes_[top];  // a copy: Expand may grow nodes_
    if (!grammar_->ClassContains(grammar_->item(node.pos).arg, cp)) continue;
    if (!Expand(node.pos + 1, node.parent, out)) return false;
    if (out->size() > 4 * options_.max_stacks && !Finish(out)) return false;
  }
  return Finish(out) && !out->empty();
}

bool Matcher::AnyTopIntersects(const std::vector<int32_t>& tops, uint32_t lo, uint32_t hi) {
  work_done_ += tops.size();
  for (int32_t top : tops) {
    if (top == kEmptyStack) continue;
    if (grammar_->ClassIntersects(grammar_->item(nodes_[top].pos).arg, lo, hi)) return true;
  }
  return false;
}

bool Matcher::StepByte(const State& in, uint8_t byte, State* out) {
  const Utf8Partial& p = in.partial;
  out->partial = Utf8Partial();
  if (p.remaining == 0 && byte < 0x80) return StepCodepoint(in.tops, byte, &out->tops);
  Utf8Partial next;
  if (p.remaining == 0) {
    // A lead byte: its length and the strict range of the byte after it (Unicode Table 3-7).
    if (byte >= 0xC2 && byte <= 0xDF) {
      next = {uint32_t{byte} & 0x1F, 1, 0x80, 0xBF};
    } else if (byte >= 0xE0 && byte <= 0xEF) {
      next = {uint32_t{byte} & 0x0F, 2, static_cast<uint8_t>(byte == 0xE0 ? 0xA0 : 0x80),
              static_cast<uint8_t>(byte == 0xED ? 0x9F : 0xBF)};
    } else if (byte >= 0xF0 && byte <= 0xF4) {
      next = {uint32_t{byte} & 0x07, 3, static_cast<uint8_t>(byte == 0xF0 ? 0x90 : 0x80),
              static_cast<uint8_t>(byte == 0xF4 ? 0x8F : 0xBF)};
    } else {
      return false;
    }
  } else {
    if (byte < p.next_lo || byte > p.next_hi) return false;
    uint32_t bits = (p.bits << 6) | (byte & 0x3F);
    if (p.remaining == 1) return StepCodepoint(in.tops, bits, &out->tops);
    next = {bits, static_cast<uint8_t>(p.remaining - 1), 0x80, 0xBF};
  }
  // The code points this prefix can still become: [lo, hi].
  unsigned rest = 6 * (next.remaining - 1u);
  uint32_t lo = ((next.bits << 6) | (next.next_lo & 0x3F)) << rest;
  uint32_t hi = (((next.bits << 6) | (next.next_hi & 0x3F)) << rest) | ((1u << rest) - 1);
  if (!AnyTopIntersects(in.tops, lo, hi)) return false;
  out->tops = in.tops;
  out->partial = next;
  return true;
}

bool Matcher::AcceptBytes(std::string_view bytes) {
  limit_exceeded_ = false;
  if (bytes.empty()) return true;
  size_t mark = Mark();
  State cur = state_, next;
  for (char c : bytes) {
    if (!StepByte(cur, static_cast<uint8_t>(c), &next)) {
      Rollback(mark);
      return false;
    }
    std::swap(cur, next);
  }
  state_ = std::move(cur);
  CompactIfLarge();
  return true;
}

bool Matcher::AcceptCodepoint(uint32_t cp) {
  limit_exceeded_ = false;
  if (state_.partial.remaining != 0) return false;
  const size_t mark = Mark();
  State next;
  if (!StepCodepoint(state_.tops, cp, &next.tops)) {
    Rollback(mark);
    return false;
  }
  state_ = std::move(next);
  CompactIfLarge();
  return true;
}

bool Matcher::IsComplete() const {
  return state_.partial.remaining == 0 && !state_.tops.empty() &&
         state_.tops.front() == kEmptyStack;
}

bool Matcher::CanContinue() const {
  return !state_.tops.empty() && state_.tops.back() != kEmptyStack;
}

// Nodes that no live stack reaches pile up as input is accepted; once the arena has doubled since
// the last compaction, rebuild it from the live stacks. Parents always have smaller ids than their
// children, so one ascending pass renumbers them in order and the tops stay sorted.
void Matcher::CompactIfLarge() {
  if (nodes_.size() <= 2 * compacted_size_ + 1024) return;
  std::vector<int32_t> remap(nodes_.size(), kTooDeep);
  for (int32_t top : state_.tops) {
    for (int32_t n = top; n != kEmptyStack && remap[n] == kTooDeep; n = nodes_[n].parent) {
      remap[n] = 0;  // reachable
    }
  }
  std::vector<Node> old = std::move(nodes_);
  nodes_.clear();
  index_.clear();
  for (size_t i = 0; i < old.size(); ++i) {
    if (remap[i] == kTooDeep) continue;
    int32_t parent = old[i].parent == kEmptyStack ? kEmptyStack : remap[old[i].parent];
    remap[i] = static_cast<int32_t>(nodes_.size());
    index_.emplace(Key(old[i].pos, parent), remap[i]);
    nodes_.push_back({old[i].pos, parent, old[i].depth});
  }
  for (int32_t& top : state_.tops) {
    if (top != kEmptyStack) top = remap[top];
  }
  compacted_size_ = nodes_.size();
}

}  // namespace gannet::grammar
