#include "engine/kv_cache_manager.h"

#include <string>

namespace gannet::engine {

PrefixMatch KvCacheManager::MatchPrefix(std::span<const int32_t> tokens) const {
  PrefixMatch m;
  const size_t bs = static_cast<size_t>(block_size());
  if (tokens.empty()) return m;
  const size_t max_blocks = (tokens.size() - 1) / bs;  // the last token is always computed
  BlockId parent = kNoBlock;
  for (size_t j = 0; j < max_blocks; ++j) {
    const std::span<const int32_t> chunk = tokens.subspan(j * bs, bs);
    const BlockHash h = HashBlockTokens(m.last_hash, chunk);
    const BlockId id = pool_.Lookup(h, parent, chunk);
    if (id == kNoBlock) break;
    m.blocks.push_back(id);
    m.last_hash = h;
    parent = id;
  }
  m.num_tokens = static_cast<int32_t>(m.blocks.size() * bs);
  return m;
}

bool KvCacheManager::AllocateSlots(SeqId seq, int32_t n_new, const PrefixMatch* prefix) {
  GANNET_CHECK(n_new >= 0);
  auto it = seqs_.find(seq);
  const bool is_new = it == seqs_.end();
  GANNET_CHECK(prefix == nullptr || is_new);
  const int32_t bs = block_size();

  const int32_t base_slots = is_new ? (prefix ? prefix->num_tokens : 0) : it->second.num_slots;
  const int64_t base_blocks = is_new ? (prefix ? static_cast<int64_t>(prefix->blocks.size()) : 0)
                                     : static_cast<int64_t>(it->second.table.size());
  const int64_t target = static_cast<int64_t>(base_slots) + n_new;
  if (target > (int64_t{1} << 31) - 1) return false;
  const int64_t need = (target + bs - 1) / bs - base_blocks;
  int64_t revive = 0;  // cached blocks at ref 0 leave the free queue when attached
  if (prefix != nullptr) {
    for (const BlockId b : prefix->blocks) {
      GANNET_CHECK(pool_.is_cached(b));
      if (pool_.ref_count(b) == 0) ++revive;
    }
  }
  const bool cow =
      !is_new && n_new > 0 && base_slots % bs != 0 && pool_.ref_count(it->second.table.back()) > 1;
  if (need + revive + (cow ? 1 : 0) > pool_.num_free()) return false;

  SeqKv& s = is_new ? seqs_[seq] : it->second;
  if (prefix != nullptr) {
    for (const BlockId b : prefix->blocks) pool_.AddRef(b);
    s.table = prefix->blocks;
    s.num_slots = prefix->num_tokens;
    s.num_committed_blocks = static_cast<int32_t>(prefix->blocks.size());
    s.last_hash = prefix->last_hash;
  }
  if (cow) {
    const std::optional<BlockId> w = pool_.MakeWritable(s.table.back(), &copies_);
    GANNET_CHECK(w.has_value());
    s.table.back() = *w;
  }
  if (need > 0) {
    std::optional<std::vector<BlockId>> fresh = pool_.Allocate(static_cast<int32_t>(need));
    GANNET_CHECK(fresh.has_value());
    s.table.insert(s.table.end(), fresh->begin(), fresh->end());
  }
  s.num_slots = static_cast<int32_t>(target);
  return true;
}

void KvCacheManager::CommitTokens(SeqId seq, std::span<const int32_t> tokens,
                                  int32_t num_computed) {
  auto it = seqs_.find(seq);
  GANNET_CHECK(it != seqs_.end());
  SeqKv& s = it->second;
  GANNET_CHECK(num_computed <= s.num_slots && static_cast<int64_t>(tokens.size()) >= num_computed);
  const int32_t bs = block_size();
  while (!s.caching_stopped && (s.num_committed_blocks + 1) * bs <= num_computed) {
    const int32_t j = s.num_committed_blocks;
    const std::span<const int32_t> chunk = tokens.subspan(static_cast<size_t>(j) * bs, bs);
    const BlockHash h = HashBlockTokens(s.last_hash, chunk);
    const BlockId parent = j == 0 ? kNoBlock : s.table[j - 1];
    const BlockId mine = s.table[j];
    BlockId holder;
    if (pool_.is_cached(mine)) {
      // Shared with a forked sibling that registered it first: same contents by construction.
      holder = pool_.Lookup(h, parent, chunk) == mine ? mine : kNoBlock;
    } else {
      holder = pool_.Register(mine, h, parent, chunk);
    }
    if (holder == kNoBlock) {
      s.caching_stopped =
          true;  // 64-bit collision with other contents: keep the entry that is there
      break;
    }
    if (holder != mine) {
      // Identical contents computed twice (two requests prefilled the same prefix in one step):
      // keep the cached copy, free ours. The engine has finished writing `mine` for this step.
      pool_.AddRef(holder);
      pool_.Release(mine);
      s.table[j] = holder;
    }
    s.last_hash = h;
    ++s.num_committed_blocks;
  }
}

void KvCacheManager::TrimSlots(SeqId seq, int32_t num_slots) {
  const auto it = seqs_.find(seq);
  GANNET_CHECK(it != seqs_.end());
  SeqKv& s = it->second;
  const int32_t bs = pool_.block_size();
  GANNET_CHECK(num_slots >= s.num_committed_blocks * bs && num_slots <= s.num_slots);
  const size_t keep = static_cast<size_t>((num_slots + bs - 1) / bs);
  while (s.table.size() > keep) {
    pool_.Release(s.table.back());
    s.table.pop_back();
  }
  s.num_slots = num_slots;
}

void KvCacheManager::Free(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  const std::vector<BlockId>& t = it->second.table;
  for (auto b = t.rbegin(); b != t.rend(); ++b) pool_.Release(*b);
  seqs_.erase(it);
}

Status KvCacheManager::Fork(SeqId parent, SeqId child) {
  const auto it = seqs_.find(parent);
  if (it == seqs_.end())
    return Status::NotFound("fork: sequence " + std::to_string(parent) + " has no KV");
  if (seqs_.count(child) != 0) {
    return Status::InvalidArgument("fork: sequence " + std::to_string(child) + " already has KV");
  }
  SeqKv copy = it->second;
  for (const BlockId b : copy.table) pool_.AddRef(b);
  seqs_.emplace(child, std::move(copy));
  return Status::Ok();
}

std::span<const BlockId> KvCacheManager::BlockTable(SeqId seq) const {
  const auto it = seqs_.find(seq);
  GANNET_CHECK(it != seqs_.end());
  return it->second.table;
}

int32_t KvCacheManager::NumSlots(SeqId seq) const {
  const auto it = seqs_.find(seq);
  GANNET_CHECK(it != seqs_.end());
  return it->second.num_slots;
}

std::vector<BlockCopy> KvCacheManager::TakeCopies() {
  std::vector<BlockCopy> out;
  out.swap(copies_);
  return out;
}

Status KvCacheManager::CheckInvariants() const {
  GANNET_RETURN_IF_ERROR(pool_.CheckInvariants());
  const int32_t bs = block_size();
  std::vector<int32_t> refs(pool_.num_blocks(), 0);
  for (const auto& [id, s] : seqs_) {
    const std::string who = "sequence " + std::to_string(id);
    if (static_cast<int64_t>(s.table.size()) != (static_cast<int64_t>(s.num_slots) + bs - 1) / bs) {
      return Status::Internal(who + ": " + std::to_string(s.table.size()) + " blocks for " +
                              std::to_string(s.num_slots) + " slots");
    }
    if (s.num_committed_blocks > static_cast<int32_t>(s.table.size())) {
      return Status::Internal(who + ": more committed blocks than blocks");
    }
    for (int32_t j = 0; j < s.num_committed_blocks; ++j) {
      if (!pool_.is_cached(s.table[j]))
        return Status::Internal(who + ": committed block not in the prefix cache");
    }
    for (const BlockId b : s.table) {
      if (b < 0 || b >= pool_.num_blocks())
        return Status::Internal(who + ": block id out of range");
      ++refs[b];
    }
  }
  for (BlockId b = 0; b < pool_.num_blocks(); ++b) {
    if (refs[b] != pool_.ref_count(b)) {
      return Status::Internal("block " + std::to_string(b) + " has ref " +
                              std::to_string(pool_.ref_count(b)) + " but " +
                              std::to_string(refs[b]) + " table entries");
    }
  }
  return Status::Ok();
}

}  // namespace gannet::engine
