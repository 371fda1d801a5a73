// attention_rate: time of cpu::Attention over a paged f16 KV cache as a forward pass sees it:
// LAYERS caches of N_KV positions each (blocks of BLOCK positions, in order or shuffled), the
// queries the last TOKENS positions, one call per layer in turn. Best of REPS sweeps after one
// warm-up; prints microseconds per layer and the K/V bytes read per second. With LAYERS * the
// cache's bytes beyond the last-level cache this is what a decode step's attention costs; compare
// builds of two commits by running each build's binary. The inputs are seeded, and the line ends
// with a hash of the last layer's output bits: two builds whose kernels give the same bits print
// the same hash (GANNET_ISA=avx2 or avx512 picks the target).
//
//   build/bin/attention_rate 64 9 3 576 1 2 30      # head_dim heads kv_heads n_kv tokens threads
//                                                   # [layers] [reps] [block] [shuffle]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/ops.h"

int main(int argc, char** argv) {
  using namespace gannet;
  if (argc < 7) {
    std::fprintf(stderr,
                 "usage: attention_rate HEAD_DIM N_HEAD N_KV_HEAD N_KV TOKENS THREADS [LAYERS] "
                 "[REPS] [BLOCK] [SHUFFLE]\n");
    return 2;
  }
  const int64_t head_dim = std::atoll(argv[1]), n_head = std::atoll(argv[2]),
                n_kv_head = std::atoll(argv[3]), n_kv = std::atoll(argv[4]),
                n_tokens = std::atoll(argv[5]);
  const int threads = std::atoi(argv[6]);
  const int layers = argc > 7 ? std::atoi(argv[7]) : 30;
  const int reps = argc > 8 ? std::atoi(argv[8]) : 20;
  const int64_t block = argc > 9 ? std::atoll(argv[9]) : 16;
  const bool shuffle = argc > 10 && std::atoi(argv[10]) != 0;
  if (head_dim < 1 || n_kv_head < 1 || n_head < n_kv_head || n_head % n_kv_head != 0 ||
      n_tokens < 1 || n_kv < n_tokens || threads < 1 || layers < 1 || reps < 1 || block < 1) {
    std::fprintf(stderr,
                 "attention_rate: need N_HEAD a multiple of N_KV_HEAD, N_KV >= TOKENS >= 1\n");
    return 2;
  }
  const int64_t row = n_kv_head * head_dim;
  const int64_t n_blocks = (n_kv + block - 1) / block;
  std::mt19937 rng(1);
  std::normal_distribution<float> unit(0.0f, 1.0f);
  // As the engine's KV store: per layer one buffer for K and one for V, calloc'ed; a sequence's
  // blocks in order (a fresh pool), or with SHUFFLE 1 in a random order (a pool fragmented by
  // many requests).
  const size_t block_elems = static_cast<size_t>(block * row);
  std::vector<int64_t> table(n_blocks);
  std::iota(table.begin(), table.end(), 0);
  if (shuffle) std::shuffle(table.begin(), table.end(), rng);
  std::vector<std::unique_ptr<uint16_t, decltype(&std::free)>> storage;
  std::vector<const uint16_t*> k_ptrs(layers * n_blocks), v_ptrs(layers * n_blocks);
  std::vector<uint16_t*> k_mut(layers * n_blocks), v_mut(layers * n_blocks);
  for (int l = 0; l < layers; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      auto* p = static_cast<uint16_t*>(std::calloc(n_blocks * block_elems, sizeof(uint16_t)));
      storage.emplace_back(p, &std::free);
      for (int64_t i = 0; i < n_blocks; ++i) {
        (kv == 0 ? k_mut : v_mut)[l * n_blocks + i] = p + table[i] * block_elems;
        (kv == 0 ? k_ptrs : v_ptrs)[l * n_blocks + i] = p + table[i] * block_elems;
      }
    }
  }
  std::vector<int32_t> pos(n_kv);
  std::iota(pos.begin(), pos.end(), 0);
  {
    std::vector<float> kv(static_cast<size_t>(n_kv * row));
    for (int l = 0; l < layers; ++l) {
      for (float& v : kv) v = unit(rng);
      const int64_t b = l * n_blocks;
      cpu::StoreKv(kv.data(), row, kv.data(), row, n_kv, row, pos.data(), &k_mut[b], &v_mut[b],
                   block);
    }
  }
  const int64_t q_stride = n_head * head_dim;
  std::vector<float> q(static_cast<size_t>(n_tokens * q_stride)), out(q.size());
  for (float& v : q) v = unit(rng);
  const int32_t* q_pos = pos.data() + (n_kv - n_tokens);
  ThreadPool pool(threads);
  const char* isa_env = std::getenv("GANNET_ISA");
  const cpu::Isa isa = cpu::IsaByName(isa_env ? isa_env : "").value_or(cpu::BestIsa());
  double best = 1e30;
  for (int r = 0; r <= reps; ++r) {  // the first sweep warms the pool
    const auto t0 = std::chrono::steady_clock::now();
    for (int l = 0; l < layers; ++l) {
      const int64_t b = l * n_blocks;
      cpu::Attention(pool,
                     cpu::AttentionArgs{.q = q.data(),
                                        .q_stride = q_stride,
                                        .n_tokens = n_tokens,
                                        .n_head = n_head,
                                        .n_kv_head = n_kv_head,
                                        .head_dim = head_dim,
                                        .q_pos = q_pos,
                                        .kv = cpu::KvView{.k_blocks = &k_ptrs[b],
                                                          .v_blocks = &v_ptrs[b],
                                                          .block_size = block},
                                        .n_kv = n_kv,
                                        .scale = 1.0f / std::sqrt(static_cast<float>(head_dim)),
                                        .out = out.data(),
                                        .out_stride = q_stride},
                     isa);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::min(best, s);
  }
  const double bytes = 2.0 * static_cast<double>(n_kv * row) * sizeof(uint16_t) * layers;
  // FNV-1a of the last layer's output bytes: two builds that give the same bits print the same.
  uint64_t hash = 14695981039346656037ull;
  for (const unsigned char c :
       std::span(reinterpret_cast<const unsigned char*>(out.data()), out.size() * sizeof(float))) {
    hash = (hash ^ c) * 1099511628211ull;
  }
  std::printf(
      "attention head_dim %lld, heads %lld/%lld, n_kv %lld, %lld tokens, %d threads, %d layers, "
      "%s: %.2f us per layer, K/V read at %.2f GB/s (best of %d); output bits %016llx\n",
      static_cast<long long>(head_dim), static_cast<long long>(n_head),
      static_cast<long long>(n_kv_head), static_cast<long long>(n_kv),
      static_cast<long long>(n_tokens), threads, layers, cpu::IsaName(isa), best / layers * 1e6,
      bytes / best / 1e9, reps, static_cast<unsigned long long>(hash));
  return 0;
}
