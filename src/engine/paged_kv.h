// Paged KV storage for many sequences: every layer's K and V live in one pool of fixed-size
// blocks (block_size token slots of [kv_width] f16 each), and a sequence is a block table that
// maps its logical block i (positions [i * block_size, (i + 1) * block_size)) to a physical
// block id (vLLM's PagedAttention, SOSP'23). Which block belongs to whom is decided elsewhere
// (the block manager); this class only owns the bytes and turns a block table into the views
// the attention kernel reads through.
// Memory: n_blocks * block_size * sum over layers of 2 * kv_width * 2 bytes, reserved at
// creation (calloc: pages are touched only as blocks fill).
// Thread-safety: none; used by the engine's step thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "base/status.h"
#include "graph/plan.h"
#include "models/model.h"

namespace gannet::engine {

// The cache views of one sequence for one step: per layer, arrays of block pointers.
// Reused across steps to avoid allocation (Assign overwrites).
struct SeqKvViews {
  std::vector<uint16_t*> ptrs;             // [n_layer][2][n_table_blocks]
  std::vector<graph::KvLayerView> layers;  // [n_layer]
};

class PagedKvStore {
 public:
  // Bytes one block takes over all layers (K and V).
  static size_t BytesPerBlock(const models::ModelConfig& config, int64_t block_size);
  static Result<PagedKvStore> Create(const models::ModelConfig& config, int64_t n_blocks,
                                     int64_t block_size);

  PagedKvStore(PagedKvStore&&) = default;
  PagedKvStore& operator=(PagedKvStore&&) = default;

  int64_t n_blocks() const { return n_blocks_; }
  int64_t block_size() const { return block_size_; }
  size_t bytes() const { return bytes_; }

  // Fills `out` with the views of a sequence whose logical block i is physical block table[i].
  // REQUIRES: every id in [0, n_blocks).
  void Assign(std::span<const int32_t> table, SeqKvViews* out) const;

  // Copies block src's K/V (all layers) into block dst (copy-on-write of a shared block).
  void CopyBlock(int32_t src, int32_t dst);

  // Copies the K/V of positions [begin, end) of every layer of this store from the same layers of
  // `src` (a store with at least these layers, the same widths and block size: the target's, for
  // a draft that runs its first layers, engine/self_draft.h): src's sequence has block table
  // src_table, this store's dst_table.
  // REQUIRES: both tables cover `end` positions; src is not this store.
  void CopyPositionsFrom(const PagedKvStore& src, std::span<const int32_t> src_table,
                         std::span<const int32_t> dst_table, int64_t begin, int64_t end);
  int64_t n_layers() const { return static_cast<int64_t>(widths_.size()); }

  // For a sequence with block table `table` (slot s in block table[s / block_size], row
  // s % block_size), copies the K and V of every layer at slot `from` to slot `to` for each
  // (from, to) of `moves`, in order: after a token tree's verification, the accepted path's K/V
  // move to consecutive positions (ModelRunner's BatchSeq::tree_parents). Moves along a path
  // go to lower slots in increasing order, so none overwrites a slot a later move reads.
  // REQUIRES: 0 <= from, to < table.size() * block_size; every id in [0, n_blocks).
  void CopySlots(std::span<const int32_t> table,
                 std::span<const std::pair<int64_t, int64_t>> moves);

 private:
  PagedKvStore() = default;
  struct FreeDeleter {
    void operator()(uint16_t* p) const;
  };
  int64_t n_blocks_ = 0, block_size_ = 0;
  size_t bytes_ = 0;
  std::vector<int64_t> widths_;                                  // kv_width per layer
  std::vector<std::unique_ptr<uint16_t, FreeDeleter>> buffers_;  // [n_layer][2]
};

}  // namespace gannet::engine
