// KV cache of one sequence: for every layer, K and V as f16 rows of [n_kv_head * head_dim],
// one slot per position. It is exposed to the graph as block views with a single block of
// n_ctx slots, the same interface the paged multi-sequence cache will feed the attention
// kernel with (block tables of fixed-size blocks).
// Memory: reserved up front for n_ctx positions; pages are touched only as positions fill.
// Thread-safety: none; owned by the engine's step thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/status.h"
#include "graph/plan.h"
#include "models/model.h"

namespace gannet::engine {

class KvCache {
 public:
  static Result<KvCache> Create(const models::ModelConfig& config, int64_t n_ctx);

  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

  int64_t n_ctx() const { return n_ctx_; }
  size_t bytes() const { return bytes_; }
  std::span<const graph::KvLayerView> views() const { return views_; }

 private:
  KvCache() = default;
  struct FreeDeleter {
    void operator()(uint16_t* p) const;
  };
  int64_t n_ctx_ = 0;
  size_t bytes_ = 0;
  std::vector<std::unique_ptr<uint16_t, FreeDeleter>> buffers_;  // K and V of each layer
  std::vector<uint16_t*> block_ptrs_;                              // [2 * n_layer]: K_l, V_l
  std::vector<graph::KvLayerView> views_;
};

}  // namespace gannet::engine
