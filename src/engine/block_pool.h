// BlockPool: the paged KV memory of the serving engine as pure bookkeeping (PagedAttention,
// SOSP'23). The pool owns no K/V bytes; it hands out block ids 0..num_blocks-1 that the engine
// maps to the physical K/V storage of each layer, so a sequence's block table (logical block i ->
// physical block id) is what the attention kernel's KvView reads through.
//
// Reference counts: a block is held by every block table that lists it. A block whose count drops
// to 0 goes to the free queue. Prefix caching: a full block can be registered under the hash of its
// contents chained with its parent's hash; a registered block keeps its contents while it sits in
// the free queue and can be revived by a later request with the same prefix, until an allocation
// needs the memory. The free queue is ordered so that:
//   - blocks that hold nothing worth keeping (never registered) are reused first;
//   - registered blocks are evicted least recently freed first (LRU).
//
// Hits are exact: the hash only indexes. A lookup compares the block's token ids and requires that
// its recorded parent is the very block (id and generation) matched for the previous position, so
// by induction the whole prefix is equal; a 64-bit collision costs a miss, never wrong output.
//
// Copy-on-write: a shared block that one holder must write into is replaced, for that holder, by a
// fresh block; the copy (src -> dst) the engine must perform before running the step is reported.
//
// Thread-safety: none; owned by the scheduler, used from the engine's step thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/status.h"

namespace gannet::engine {

using BlockId = int32_t;
inline constexpr BlockId kNoBlock = -1;

// Hash of a full block given its parent block's hash (kRootBlockHash for the first block).
using BlockHash = uint64_t;
inline constexpr BlockHash kRootBlockHash = 0x6a09e667f3bcc908ULL;
BlockHash HashBlockTokens(BlockHash parent, std::span<const int32_t> tokens);

// A K/V copy the engine performs before the forward pass that writes into `dst`.
// Copies of one step must be performed in the order given (a later copy may reuse an earlier src).
struct BlockCopy {
  BlockId src = kNoBlock;
  BlockId dst = kNoBlock;
  bool operator==(const BlockCopy&) const = default;
};

struct BlockPoolOptions {
  int32_t num_blocks = 0;
  int32_t block_size = 16;  // tokens per block
};

class BlockPool {
 public:
  static Result<BlockPool> Create(const BlockPoolOptions& options);

  BlockPool(BlockPool&&) = default;
  BlockPool& operator=(BlockPool&&) = default;

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_free() const { return num_free_; }  // ref 0: unused or cached-and-evictable
  int32_t num_used() const { return num_blocks_ - num_free_; }
  int32_t num_cached() const {
    return static_cast<int32_t>(cached_.size());
  }  // registered, any ref
  int64_t num_evictions() const { return num_evictions_; }

  int32_t ref_count(BlockId id) const { return ref_[id]; }
  bool is_cached(BlockId id) const { return hash_valid_[id]; }

  // Takes `n` blocks from the front of the free queue, each with ref 1, dropping the cached
  // contents of any registered block among them. When fewer than n are free, takes nothing and
  // returns std::nullopt.
  std::optional<std::vector<BlockId>> Allocate(int32_t n);

  // Adds a holder. A block at ref 0 (cached, in the free queue) leaves the queue.
  // REQUIRES: ref_count(id) > 0 or is_cached(id).
  void AddRef(BlockId id);

  // Drops a holder. At ref 0 the block joins the free queue: at the back if registered (it keeps
  // its contents, most recently freed), at the front otherwise. REQUIRES: ref_count(id) > 0.
  void Release(BlockId id);

  // The registered block holding `tokens` right after block `parent` (kNoBlock: first block of a
  // sequence), whose hash is `hash`; kNoBlock when none. Takes no reference.
  BlockId Lookup(BlockHash hash, BlockId parent, std::span<const int32_t> tokens) const;

  // Registers full block `id` as holding `tokens` after `parent`. Returns `id`; or an existing
  // block that already holds exactly these contents (then `id` stays unregistered and the caller
  // may switch to the returned one); or kNoBlock when `hash` is taken by different contents.
  // REQUIRES: ref_count(id) > 0, !is_cached(id), tokens.size() == block_size(),
  //           parent == kNoBlock or is_cached(parent).
  BlockId Register(BlockId id, BlockHash hash, BlockId parent, std::span<const int32_t> tokens);

  // Returns a block the caller alone holds with the contents of `id`: `id` itself when its ref is
  // 1, otherwise a fresh block (the caller's reference moves to it and {id, fresh} is appended to
  // `copies`). std::nullopt, changing nothing, when a fresh block is needed and none is free.
  // REQUIRES: ref_count(id) > 0.
  std::optional<BlockId> MakeWritable(BlockId id, std::vector<BlockCopy>* copies);

  // Recomputes every derived quantity (free count, queue links, cache index) from scratch and
  // compares. For tests and debug checks; O(num_blocks).
  Status CheckInvariants() const;

  // Block ids in free-queue order (front first); for tests.
  std::vector<BlockId> FreeQueue() const;

 private:
  BlockPool() = default;
  void QueuePushFront(BlockId id);
  void QueuePushBack(BlockId id);
  void QueueRemove(BlockId id);
  void Evict(BlockId id);  // drops the registration of `id`
  std::span<const int32_t> TokensOf(BlockId id) const;

  int32_t num_blocks_ = 0;
  int32_t block_size_ = 0;
  int32_t num_free_ = 0;
  int64_t num_evictions_ = 0;
  std::vector<int32_t> ref_;
  // Free queue: intrusive doubly linked list over block ids; index num_blocks_ is the sentinel.
  std::vector<int32_t> prev_, next_;
  std::vector<uint8_t> in_queue_;
  // Prefix cache: per block, whether registered, its hash, parent (id, generation) and tokens.
  std::vector<uint8_t> hash_valid_;
  std::vector<BlockHash> hash_;
  std::vector<BlockId> parent_;
  std::vector<uint32_t> parent_generation_;
  std::vector<uint32_t> generation_;  // bumped each time a block's registration is dropped
  std::vector<int32_t> tokens_;       // [num_blocks, block_size]
  std::unordered_map<BlockHash, BlockId> cached_;
};

}  // namespace gannet::engine
