// KvCacheManager: the block tables of all sequences over one BlockPool, with prefix caching and
// copy-on-write. Pure bookkeeping: it decides which physical block holds each token position of
// each sequence; the engine moves the K/V bytes (including the copies reported by TakeCopies()).
//
// A sequence has `num_slots` positions with a slot (KV computed or being computed this step);
// its table has exactly ceil(num_slots / block_size) blocks. Full blocks whose tokens are
// committed (their K/V computed) are registered in the pool's prefix cache, so a later sequence
// whose tokens start the same way reuses them instead of recomputing.
//
// Thread-safety: none; owned by the scheduler.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "engine/block_pool.h"

namespace gannet::engine {

using SeqId = int64_t;

// The cached full blocks that hold a prefix of some tokens (see MatchPrefix).
struct PrefixMatch {
  std::vector<BlockId> blocks;           // physical blocks of logical blocks 0..n-1
  BlockHash last_hash = kRootBlockHash;  // chained hash of the last matched block
  int32_t num_tokens = 0;                // blocks.size() * block_size
};

class KvCacheManager {
 public:
  explicit KvCacheManager(BlockPool pool) : pool_(std::move(pool)) {}

  const BlockPool& pool() const { return pool_; }
  int32_t block_size() const { return pool_.block_size(); }

  // The longest run of cached full blocks that holds a prefix of `tokens`. Never covers the last
  // token: at least one token must be computed so that the model produces logits. Takes nothing.
  PrefixMatch MatchPrefix(std::span<const int32_t> tokens) const;
  int32_t GetCachedPrefix(std::span<const int32_t> tokens) const {
    return MatchPrefix(tokens).num_tokens;
  }

  // Gives `seq` slots for `n_new` more positions, allocating blocks and making its last partial
  // block writable (copy-on-write) as needed. For a sequence not yet known, `prefix` (when given)
  // is attached first: the new sequence starts with those cached blocks and num_tokens slots.
  // Returns false, changing nothing, when the pool is short of blocks.
  // REQUIRES: n_new >= 0; `prefix` only for a new sequence, computed by MatchPrefix with no pool
  // change since.
  bool AllocateSlots(SeqId seq, int32_t n_new, const PrefixMatch* prefix = nullptr);

  // Records that positions [0, num_computed) of `seq` hold the K/V of `tokens[0, num_computed)` and
  // registers every newly completed full block in the prefix cache. A block whose contents are
  // already cached in another block is swapped for that block (the duplicate is freed).
  // REQUIRES: num_computed <= NumSlots(seq) and tokens.size() >= num_computed.
  void CommitTokens(SeqId seq, std::span<const int32_t> tokens, int32_t num_computed);

  // Gives back the slots of `seq` past its first `num_slots` (speculative decoding: the slots of a
  // draft tree's rejected tokens); blocks left with no slot are released.
  // REQUIRES: Contains(seq); num_slots <= NumSlots(seq) and no committed block is cut.
  void TrimSlots(SeqId seq, int32_t num_slots);

  // Releases every block of `seq` (no-op for an unknown sequence). The tail is released first so
  // that, among its cached blocks, the ones deepest in the sequence are evicted first.
  void Free(SeqId seq);

  // Starts `child` as a copy of `parent` sharing all its blocks (ref counts, no copy); a later
  // write into a shared partial block goes through copy-on-write.
  Status Fork(SeqId parent, SeqId child);

  bool Contains(SeqId seq) const { return seqs_.count(seq) != 0; }
  // REQUIRES: Contains(seq).
  std::span<const BlockId> BlockTable(SeqId seq) const;
  int32_t NumSlots(SeqId seq) const;
  int32_t num_seqs() const { return static_cast<int32_t>(seqs_.size()); }

  // Copy-on-write copies made since the last call, in the order they must be performed.
  std::vector<BlockCopy> TakeCopies();

  // Pool invariants plus: every block's ref count equals the number of table entries naming it;
  // table lengths match slot counts; committed blocks are registered.
  Status CheckInvariants() const;

 private:
  struct SeqKv {
    std::vector<BlockId> table;
    int32_t num_slots = 0;
    int32_t num_committed_blocks = 0;      // leading full blocks already registered
    BlockHash last_hash = kRootBlockHash;  // chained hash of block num_committed_blocks - 1
    bool caching_stopped = false;          // a hash collision: later blocks are not cached
  };

  BlockPool pool_;
  std::unordered_map<SeqId, SeqKv> seqs_;
  std::vector<BlockCopy> copies_;
};

}  // namespace gannet::engine
