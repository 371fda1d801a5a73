#include "engine/paged_kv.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace gannet::engine {

void PagedKvStore::FreeDeleter::operator()(uint16_t* p) const { std::free(p); }

size_t PagedKvStore::BytesPerBlock(const models::ModelConfig& config, int64_t block_size) {
  size_t bytes = 0;
  for (int64_t l = 0; l < config.n_layer; ++l) {
    bytes += 2 * static_cast<size_t>(block_size) * static_cast<size_t>(config.kv_width(l)) *
             sizeof(uint16_t);
  }
  return bytes;
}

Result<PagedKvStore> PagedKvStore::Create(const models::ModelConfig& config, int64_t n_blocks,
                                          int64_t block_size) {
  if (n_blocks <= 0 || block_size <= 0)
    return Status::InvalidArgument("KV pool needs at least one block");
  PagedKvStore s;
  s.n_blocks_ = n_blocks;
  s.block_size_ = block_size;
  for (int64_t l = 0; l < config.n_layer; ++l) {
    const int64_t w = config.kv_width(l);
    s.widths_.push_back(w);
    const size_t bytes = static_cast<size_t>(n_blocks) * static_cast<size_t>(block_size) *
                         static_cast<size_t>(w) * sizeof(uint16_t);
    for (int kv = 0; kv < 2; ++kv) {
      auto* p = static_cast<uint16_t*>(std::calloc(1, bytes));
      if (p == nullptr) {
        return Status::ResourceExhausted("cannot allocate " + std::to_string(bytes >> 20) +
                                         " MiB for the KV pool (" + std::to_string(n_blocks) +
                                         " blocks)");
      }
      s.buffers_.emplace_back(p);
      s.bytes_ += bytes;
    }
  }
  return s;
}

void PagedKvStore::Assign(std::span<const int32_t> table, SeqKvViews* out) const {
  const size_t n_layer = widths_.size(), nb = table.size();
  out->ptrs.resize(n_layer * 2 * nb);
  out->layers.resize(n_layer);
  for (size_t l = 0; l < n_layer; ++l) {
    const size_t block_elems = static_cast<size_t>(block_size_) * static_cast<size_t>(widths_[l]);
    for (int kv = 0; kv < 2; ++kv) {
      uint16_t* base = buffers_[2 * l + kv].get();
      uint16_t** dst = &out->ptrs[(2 * l + kv) * nb];
      for (size_t i = 0; i < nb; ++i) dst[i] = base + static_cast<size_t>(table[i]) * block_elems;
    }
    out->layers[l] = graph::KvLayerView{.k_blocks = &out->ptrs[2 * l * nb],
                                        .v_blocks = &out->ptrs[(2 * l + 1) * nb],
                                        .block_size = block_size_};
  }
}

void PagedKvStore::CopyBlock(int32_t src, int32_t dst) {
  for (size_t l = 0; l < widths_.size(); ++l) {
    const size_t block_elems = static_cast<size_t>(block_size_) * static_cast<size_t>(widths_[l]);
    for (int kv = 0; kv < 2; ++kv) {
      uint16_t* base = buffers_[2 * l + kv].get();
      std::memcpy(base + static_cast<size_t>(dst) * block_elems,
                  base + static_cast<size_t>(src) * block_elems, block_elems * sizeof(uint16_t));
    }
  }
}

void PagedKvStore::CopyPositionsFrom(const PagedKvStore& src, std::span<const int32_t> src_table,
                                     std::span<const int32_t> dst_table, int64_t begin,
                                     int64_t end) {
  GANNET_CHECK(src.block_size_ == block_size_ && src.widths_.size() >= widths_.size());
  GANNET_CHECK(begin >= 0 && end <= static_cast<int64_t>(src_table.size()) * block_size_ &&
               end <= static_cast<int64_t>(dst_table.size()) * block_size_);
  for (size_t l = 0; l < widths_.size(); ++l) {
    GANNET_CHECK(src.widths_[l] == widths_[l]);
    const size_t w = static_cast<size_t>(widths_[l]);
    for (int kv = 0; kv < 2; ++kv) {
      const uint16_t* from = src.buffers_[2 * l + kv].get();
      uint16_t* to = buffers_[2 * l + kv].get();
      // Runs of positions within one block of each table: one copy per block.
      for (int64_t p = begin; p < end;) {
        const int64_t in_block = p % block_size_;
        const int64_t n = std::min(end - p, block_size_ - in_block);
        const size_t s = static_cast<size_t>(src_table[p / block_size_]) * block_size_ + in_block;
        const size_t d = static_cast<size_t>(dst_table[p / block_size_]) * block_size_ + in_block;
        std::memcpy(to + d * w, from + s * w, static_cast<size_t>(n) * w * sizeof(uint16_t));
        p += n;
      }
    }
  }
}

void PagedKvStore::CopySlots(std::span<const int32_t> table,
                             std::span<const std::pair<int64_t, int64_t>> moves) {
  const int64_t n_slots = static_cast<int64_t>(table.size()) * block_size_;
  for (const auto& [from, to] : moves) {
    GANNET_CHECK(from >= 0 && from < n_slots && to >= 0 && to < n_slots);
    if (from == to) continue;
    // Row index of a slot in the pool: its physical block's first row plus its offset.
    const size_t src = static_cast<size_t>(table[from / block_size_]) * block_size_ +
                       static_cast<size_t>(from % block_size_);
    const size_t dst = static_cast<size_t>(table[to / block_size_]) * block_size_ +
                       static_cast<size_t>(to % block_size_);
    for (size_t l = 0; l < widths_.size(); ++l) {
      const size_t w = static_cast<size_t>(widths_[l]);
      for (int kv = 0; kv < 2; ++kv) {
        uint16_t* base = buffers_[2 * l + kv].get();
        std::memcpy(base + dst * w, base + src * w, w * sizeof(uint16_t));
      }
    }
  }
}

}  // namespace gannet::engine
