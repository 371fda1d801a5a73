// Shared pieces of the CPU kernel conformance tests (ops_conformance_test.cc,
// tree_attention_conformance_test.cc, repack_rows16_test.cc): the ISA targets this machine runs,
// random data, thread pools, and a K/V cache in shuffled blocks whose unwritten slots are NaN.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/ops.h"
#include "tensor/fp16.h"

namespace gannet::cpu::conformance {

inline std::vector<Isa> Isas() {
  Isa isas[3];
  const int n = AvailableIsas(isas);
  return std::vector<Isa>(isas, isas + n);
}

inline bool HasIsa(Isa isa) {
  for (Isa i : Isas()) {
    if (i == isa) return true;
  }
  return false;
}

inline std::vector<float> RandomVector(std::mt19937& rng, int64_t n, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline ThreadPool& Pool(int n) {
  static ThreadPool one(1), three(3);
  // Let the workers start before the first Run: ThreadPool's workers read the job generation
  // when they start running, so a Run issued before that can be missed.
  static const bool started = [] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return true;
  }();
  (void)started;
  return n == 1 ? one : three;
}

// ---- KV cache in blocks ------------------------------------------------------------------

// A layer's K/V cache of `capacity` slots in blocks of `block_size`, block table shuffled so
// logical order differs from allocation order. Unwritten slots hold NaN, so a kernel that reads
// a position it must not see produces NaN and fails the comparison.
struct TestCache {
  int64_t block_size = 0, row_elems = 0;
  std::vector<std::unique_ptr<uint16_t[]>> k_store, v_store;
  std::vector<uint16_t*> k_table, v_table;

  TestCache(int64_t capacity, int64_t row_elems_in, int64_t block_size_in, std::mt19937& rng)
      : block_size(block_size_in), row_elems(row_elems_in) {
    const int64_t n_blocks = (capacity + block_size - 1) / block_size;
    const int64_t block_elems = block_size * row_elems;
    for (int64_t b = 0; b < n_blocks; ++b) {
      k_store.emplace_back(new uint16_t[block_elems]);
      v_store.emplace_back(new uint16_t[block_elems]);
      std::fill_n(k_store.back().get(), block_elems, uint16_t{0x7E00});  // f16 NaN
      std::fill_n(v_store.back().get(), block_elems, uint16_t{0x7E00});
    }
    std::vector<int64_t> order(n_blocks);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t b : order) {
      k_table.push_back(k_store[b].get());
      v_table.push_back(v_store[b].get());
    }
  }
  KvView View() const { return {k_table.data(), v_table.data(), block_size}; }
  // Value at position p, element i (f16 bits widened).
  float K(int64_t p, int64_t i) const {
    return F16ToF32(k_table[p / block_size][(p % block_size) * row_elems + i]);
  }
  float V(int64_t p, int64_t i) const {
    return F16ToF32(v_table[p / block_size][(p % block_size) * row_elems + i]);
  }
};

// Writes n_kv random rows through StoreKv, in a scrambled position order.
inline void FillCache(TestCache& c, int64_t n_kv, std::mt19937& rng) {
  std::vector<float> k = RandomVector(rng, n_kv * c.row_elems);
  std::vector<float> v = RandomVector(rng, n_kv * c.row_elems);
  std::vector<int32_t> pos(n_kv);
  std::iota(pos.begin(), pos.end(), 0);
  std::shuffle(pos.begin(), pos.end(), rng);
  std::vector<float> ks(k.size()), vs(v.size());  // row t holds position pos[t]
  for (int64_t t = 0; t < n_kv; ++t) {
    std::copy_n(&k[pos[t] * c.row_elems], c.row_elems, &ks[t * c.row_elems]);
    std::copy_n(&v[pos[t] * c.row_elems], c.row_elems, &vs[t * c.row_elems]);
  }
  StoreKv(ks.data(), c.row_elems, vs.data(), c.row_elems, n_kv, c.row_elems, pos.data(),
          c.k_table.data(), c.v_table.data(), c.block_size);
}

}  // namespace gannet::cpu::conformance
