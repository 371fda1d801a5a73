// CpuBackend::Attention over a batch of sequences: many small ones go whole to the threads in
// one run (each thread claiming the next), large ones are split over the threads one at a time.
// Every sequence's K/V slots and output rows must hold the bits that storing its rows and calling
// cpu::Attention for it alone on one thread give, whichever way the batch was cut.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "conformance_util.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/ops.h"

namespace gannet::cpu {
namespace {

using conformance::FillCache;
using conformance::Isas;
using conformance::RandomVector;
using conformance::TestCache;

struct SeqShape {
  int64_t n_past;    // positions already in the cache
  int64_t n_tokens;  // rows of this step
  bool tree;         // the rows are a token tree (a chain and a sibling) after n_past
};

// One batch: per sequence two identical caches (the backend's and the reference's), the step's
// q/k/v rows for all sequences, and the tree masks.
struct Batch {
  int64_t head_dim, n_head, n_kv_head;
  std::vector<SeqShape> shapes;
  std::vector<std::unique_ptr<TestCache>> caches, ref_caches;
  std::vector<float> q, k, v;
  std::vector<int32_t> pos;
  std::vector<std::vector<uint64_t>> masks;
  std::vector<kernels::KvLayerView> views;
  std::vector<kernels::SeqSlice> seqs;
  int64_t rows = 0;

  Batch(int64_t hd, int64_t nh, int64_t nkv, std::vector<SeqShape> s, uint32_t seed)
      : head_dim(hd), n_head(nh), n_kv_head(nkv), shapes(std::move(s)) {
    const int64_t row = n_kv_head * head_dim;
    for (const SeqShape& sh : shapes) rows += sh.n_tokens;
    masks.resize(shapes.size());
    views.resize(shapes.size());
    int64_t r = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const SeqShape& sh = shapes[i];
      // Both caches get the same blocks order and the same past (the same seed).
      for (auto* list : {&caches, &ref_caches}) {
        std::mt19937 rng(seed + static_cast<uint32_t>(i));
        list->push_back(std::make_unique<TestCache>(sh.n_past + sh.n_tokens, row, 16, rng));
        FillCache(*list->back(), sh.n_past, rng);
      }
      for (int64_t t = 0; t < sh.n_tokens; ++t) {
        // A tree: node 0 the root, each later node a child of node t - 2 (or the root), so
        // siblings see different ancestors; its position is its depth.
        int64_t depth = t;
        if (sh.tree) {
          uint64_t bits = uint64_t{1} << t;
          depth = 0;
          for (int64_t p = t; p > 0; p = p >= 2 ? p - 2 : 0) {
            bits |= uint64_t{1} << (p >= 2 ? p - 2 : 0);
            ++depth;
          }
          masks[i].push_back(bits);
        }
        pos.push_back(static_cast<int32_t>(sh.n_past + depth));
      }
      views[i] = {caches[i]->k_table.data(), caches[i]->v_table.data(), 16};
      seqs.push_back({.row_begin = r,
                      .row_end = r + sh.n_tokens,
                      .kv = std::span<const kernels::KvLayerView>(&views[i], 1),
                      .n_kv = sh.n_past + sh.n_tokens,
                      .tree_mask = sh.tree ? masks[i].data() : nullptr,
                      .tree_base = sh.tree ? sh.n_past : 0});
      r += sh.n_tokens;
    }
    std::mt19937 rng(seed + 1000);
    q = RandomVector(rng, rows * n_head * head_dim, -2.0f, 2.0f);
    k = RandomVector(rng, rows * row);
    v = RandomVector(rng, rows * row);
  }
};

void CheckBatch(Batch& b, ThreadPool& pool, Isa isa, int64_t window) {
  const int64_t width = b.n_head * b.head_dim, row = b.n_kv_head * b.head_dim;
  std::vector<float> got(b.rows * width, -1.0f), want(b.rows * width, -1.0f);
  CpuBackend backend(pool, isa);
  backend.Attention(kernels::AttentionArgs{.q = b.q.data(),
                                           .k = b.k.data(),
                                           .v = b.v.data(),
                                           .q_stride = width,
                                           .k_stride = row,
                                           .v_stride = row,
                                           .n_tokens = b.rows,
                                           .n_head = b.n_head,
                                           .n_kv_head = b.n_kv_head,
                                           .head_dim = b.head_dim,
                                           .positions = b.pos.data(),
                                           .seqs = b.seqs,
                                           .kv_layer = 0,
                                           .window = window,
                                           .scale = 0.25f,
                                           .out = got.data(),
                                           .out_stride = width});
  // The reference: each sequence alone, its rows stored, then attention on one thread.
  for (size_t i = 0; i < b.shapes.size(); ++i) {
    const SeqShape& sh = b.shapes[i];
    const kernels::SeqSlice& s = b.seqs[i];
    TestCache& c = *b.ref_caches[i];
    std::vector<int32_t> slots(b.pos.begin() + s.row_begin, b.pos.begin() + s.row_end);
    if (sh.tree) {
      for (int64_t t = 0; t < sh.n_tokens; ++t) slots[t] = static_cast<int32_t>(sh.n_past + t);
    }
    StoreKv(b.k.data() + s.row_begin * row, row, b.v.data() + s.row_begin * row, row, sh.n_tokens,
            row, slots.data(), c.k_table.data(), c.v_table.data(), 16);
    AttentionOnThisThread(AttentionArgs{.q = b.q.data() + s.row_begin * width,
                                        .q_stride = width,
                                        .n_tokens = sh.n_tokens,
                                        .n_head = b.n_head,
                                        .n_kv_head = b.n_kv_head,
                                        .head_dim = b.head_dim,
                                        .q_pos = b.pos.data() + s.row_begin,
                                        .kv = c.View(),
                                        .n_kv = s.n_kv,
                                        .window = window,
                                        .scale = 0.25f,
                                        .out = want.data() + s.row_begin * width,
                                        .out_stride = width,
                                        .tree_mask = s.tree_mask,
                                        .tree_base = s.tree_base},
                          isa);
    for (size_t blk = 0; blk < c.k_table.size(); ++blk) {
      const size_t bytes = static_cast<size_t>(16 * row) * sizeof(uint16_t);
      ASSERT_EQ(0, std::memcmp(c.k_table[blk], b.caches[i]->k_table[blk], bytes)) << "seq " << i;
      ASSERT_EQ(0, std::memcmp(c.v_table[blk], b.caches[i]->v_table[blk], bytes)) << "seq " << i;
    }
  }
  for (int64_t r = 0; r < b.rows; ++r) {
    ASSERT_EQ(0, std::memcmp(got.data() + r * width, want.data() + r * width,
                             static_cast<size_t>(width) * sizeof(float)))
        << "row " << r;
  }
}

TEST(BackendAttention, EverySequenceHasTheBitsOfItsOwnCall) {
  std::vector<SeqShape> decode;  // a decode batch: one row each, contexts of 1 .. 200
  for (int i = 0; i < 19; ++i) decode.push_back({(i * 37) % 200, 1, false});
  std::vector<SeqShape> mixed = decode;  // a prefill chunk and verification trees among them
  mixed.insert(mixed.begin() + 3, {40, 300, false});
  mixed.push_back({70, 6, true});
  mixed.push_back({0, 5, true});
  std::vector<SeqShape> few = {
      {500, 1, false}, {3, 1, false}, {90, 2, false}};  // one pool run each
  std::vector<SeqShape> empty_past = {{0, 1, false}, {0, 1, false}, {0, 1, false}, {0, 1, false},
                                      {0, 1, false}, {0, 1, false}, {0, 1, false}};
  struct Case {
    int64_t head_dim, n_head, n_kv_head, window;
    const std::vector<SeqShape>* shapes;
  };
  uint32_t seed = 7;
  for (const Case& c :
       {Case{256, 4, 1, 0, &decode}, Case{64, 9, 3, 0, &mixed}, Case{256, 4, 1, 50, &mixed},
        Case{20, 3, 1, 0, &few}, Case{36, 6, 2, 7, &empty_past}}) {
    for (Isa isa : Isas()) {
      for (int threads : {1, 2, 3}) {
        SCOPED_TRACE("head_dim=" + std::to_string(c.head_dim) +
                     " heads=" + std::to_string(c.n_head) + "/" + std::to_string(c.n_kv_head) +
                     " window=" + std::to_string(c.window) +
                     " seqs=" + std::to_string(c.shapes->size()) + " " + IsaName(isa) +
                     " threads=" + std::to_string(threads));
        ThreadPool pool(threads);
        Batch b(c.head_dim, c.n_head, c.n_kv_head, *c.shapes, seed++);
        CheckBatch(b, pool, isa, c.window);
      }
    }
  }
}

}  // namespace
}  // namespace gannet::cpu
