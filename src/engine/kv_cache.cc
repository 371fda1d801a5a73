#include "engine/kv_cache.h"

#include <cstdlib>

namespace gannet::engine {

void KvCache::FreeDeleter::operator()(uint16_t* p) const { std::free(p); }

Result<KvCache> KvCache::Create(const models::ModelConfig& config, int64_t n_ctx) {
  if (n_ctx <= 0) return Status::InvalidArgument("context size must be positive");
  KvCache c;
  c.n_ctx_ = n_ctx;
  const int64_t n_layer = config.n_layer;
  c.buffers_.reserve(2 * n_layer);
  c.block_ptrs_.resize(2 * n_layer);
  for (int64_t l = 0; l < n_layer; ++l) {
    const size_t bytes = static_cast<size_t>(n_ctx) * static_cast<size_t>(config.kv_width(l)) * sizeof(uint16_t);
    for (int kv = 0; kv < 2; ++kv) {
      // Large calloc is served by fresh anonymous mappings: untouched positions cost no memory.
      auto* p = static_cast<uint16_t*>(std::calloc(1, bytes));
      if (p == nullptr) {
        return Status::ResourceExhausted("cannot allocate " + std::to_string(bytes >> 20) +
                                         " MiB for the KV cache (context " + std::to_string(n_ctx) + ")");
      }
      c.buffers_.emplace_back(p);
      c.block_ptrs_[2 * l + kv] = p;
      c.bytes_ += bytes;
    }
  }
  c.views_.resize(n_layer);
  for (int64_t l = 0; l < n_layer; ++l) {
    c.views_[l] = graph::KvLayerView{.k_blocks = &c.block_ptrs_[2 * l], .v_blocks = &c.block_ptrs_[2 * l + 1],
                                     .block_size = n_ctx};
  }
  return c;
}

}  // namespace gannet::engine
