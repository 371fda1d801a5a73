// attention_batch: a decode step's attention over SEQS sequences (one query row each, N_KV
// positions of context each, LAYERS layers), two ways in one process, interleaved:
//   per-seq  StoreKv + cpu::Attention once per sequence (the pool split inside each call);
//   backend  CpuBackend::Attention with every sequence in one call (what the graph runs).
// Between sweeps a buffer of FLUSH_MIB is read, as a decode step's weight stream evicts the K/V
// from the caches (0: none). Prints the median and best microseconds per layer of each.
//
//   build/bin/attention_batch 256 4 1 70 16 2            # head_dim heads kv_heads n_kv seqs
//   threads
//                                                        # [layers] [reps] [flush_mib]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/ops.h"
#include "tensor/fp16.h"

int main(int argc, char** argv) {
  using namespace gannet;
  if (argc < 7) {
    std::fprintf(stderr,
                 "usage: attention_batch HEAD_DIM N_HEAD N_KV_HEAD N_KV SEQS THREADS [LAYERS] "
                 "[REPS] [FLUSH_MIB]\n");
    return 2;
  }
  const int64_t head_dim = std::atoll(argv[1]), n_head = std::atoll(argv[2]),
                n_kv_head = std::atoll(argv[3]), n_kv = std::atoll(argv[4]),
                n_seqs = std::atoll(argv[5]);
  const int threads = std::atoi(argv[6]);
  const int layers = argc > 7 ? std::atoi(argv[7]) : 18;
  const int reps = argc > 8 ? std::atoi(argv[8]) : 30;
  const int64_t flush_mib = argc > 9 ? std::atoll(argv[9]) : 256;
  if (head_dim < 1 || n_kv_head < 1 || n_head < n_kv_head || n_head % n_kv_head != 0 || n_kv < 1 ||
      n_seqs < 1 || n_seqs > 4096 || threads < 1 || layers < 1 || reps < 1 || flush_mib < 0) {
    std::fprintf(stderr, "attention_batch: need N_HEAD a multiple of N_KV_HEAD, positive sizes\n");
    return 2;
  }
  constexpr int64_t kBlock = 16;
  const int64_t row = n_kv_head * head_dim, width = n_head * head_dim;
  const int64_t n_blocks = (n_kv + kBlock - 1) / kBlock;
  const size_t block_elems = static_cast<size_t>(kBlock * row);
  // Per (layer, sequence): its blocks, in a shuffled order within one pool per layer (a pool that
  // many requests have fragmented).
  std::mt19937 rng(1);
  std::normal_distribution<float> unit(0.0f, 1.0f);
  std::vector<std::unique_ptr<uint16_t[]>> pools;
  std::vector<uint16_t*> k_tab(layers * n_seqs * n_blocks), v_tab(k_tab.size());
  for (int l = 0; l < layers; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      const size_t elems = static_cast<size_t>(n_seqs * n_blocks) * block_elems;
      pools.emplace_back(new uint16_t[elems]);
      std::vector<int64_t> order(static_cast<size_t>(n_seqs * n_blocks));
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      for (size_t i = 0; i < order.size(); ++i) {
        (kv == 0 ? k_tab : v_tab)[l * n_seqs * n_blocks + i] =
            pools.back().get() + order[i] * block_elems;
      }
      for (size_t i = 0; i < elems; ++i) pools.back()[i] = F32ToF16(0.5f * unit(rng));
    }
  }
  std::vector<float> q(static_cast<size_t>(n_seqs * width)), kv_new(n_seqs * row);
  for (float& v : q) v = unit(rng);
  for (float& v : kv_new) v = unit(rng);
  std::vector<float> out_a(q.size()), out_b(q.size());
  std::vector<int32_t> pos(static_cast<size_t>(n_seqs), static_cast<int32_t>(n_kv - 1));
  std::vector<kernels::KvLayerView> views(layers * n_seqs);
  for (int l = 0; l < layers; ++l) {
    for (int64_t s = 0; s < n_seqs; ++s) {
      const size_t at = static_cast<size_t>((l * n_seqs + s) * n_blocks);
      views[l * n_seqs + s] = {&k_tab[at], &v_tab[at], kBlock};
    }
  }
  // Sequence s's views of all layers, as the engine's SeqSlice::kv holds them.
  std::vector<std::vector<kernels::KvLayerView>> seq_views(n_seqs);
  std::vector<kernels::SeqSlice> seqs(n_seqs);
  for (int64_t s = 0; s < n_seqs; ++s) {
    for (int l = 0; l < layers; ++l) seq_views[s].push_back(views[l * n_seqs + s]);
    seqs[s] = {.row_begin = s, .row_end = s + 1, .kv = seq_views[s], .n_kv = n_kv};
  }
  ThreadPool pool(threads);
  const char* isa_env = std::getenv("GANNET_ISA");
  const cpu::Isa isa = cpu::IsaByName(isa_env ? isa_env : "").value_or(cpu::BestIsa());
  cpu::CpuBackend backend(pool, isa);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<char> flush(static_cast<size_t>(flush_mib) << 20, 1);
  volatile long sink = 0;
  auto evict = [&] {
    long s = 0;
    for (size_t i = 0; i < flush.size(); i += 64) s += flush[i];
    sink = sink + s;
  };
  auto per_seq = [&] {
    for (int l = 0; l < layers; ++l) {
      for (int64_t s = 0; s < n_seqs; ++s) {
        const kernels::KvLayerView& v = views[l * n_seqs + s];
        cpu::StoreKv(kv_new.data() + s * row, row, kv_new.data() + s * row, row, 1, row, &pos[s],
                     v.k_blocks, v.v_blocks, kBlock);
        cpu::Attention(pool,
                       cpu::AttentionArgs{.q = q.data() + s * width,
                                          .q_stride = width,
                                          .n_tokens = 1,
                                          .n_head = n_head,
                                          .n_kv_head = n_kv_head,
                                          .head_dim = head_dim,
                                          .q_pos = &pos[s],
                                          .kv = cpu::KvView{.k_blocks = v.k_blocks,
                                                            .v_blocks = v.v_blocks,
                                                            .block_size = kBlock},
                                          .n_kv = n_kv,
                                          .scale = scale,
                                          .out = out_a.data() + s * width,
                                          .out_stride = width},
                       isa);
      }
    }
  };
  auto batched = [&] {
    for (int l = 0; l < layers; ++l) {
      backend.Attention(kernels::AttentionArgs{.q = q.data(),
                                               .k = kv_new.data(),
                                               .v = kv_new.data(),
                                               .q_stride = width,
                                               .k_stride = row,
                                               .v_stride = row,
                                               .n_tokens = n_seqs,
                                               .n_head = n_head,
                                               .n_kv_head = n_kv_head,
                                               .head_dim = head_dim,
                                               .positions = pos.data(),
                                               .seqs = seqs,
                                               .kv_layer = l,
                                               .scale = scale,
                                               .out = out_b.data(),
                                               .out_stride = width});
    }
  };
  std::vector<double> ta, tb;
  for (int r = 0; r <= reps; ++r) {  // the first round warms the pool
    for (int k = 0; k < 2; ++k) {
      const bool a_first = r % 2 == 0;
      const bool run_a = (k == 0) == a_first;
      evict();
      const auto t0 = std::chrono::steady_clock::now();
      run_a ? per_seq() : batched();
      const double us =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e6 /
          layers;
      if (r > 0) (run_a ? ta : tb).push_back(us);
    }
  }
  if (std::memcmp(out_a.data(), out_b.data(), out_a.size() * sizeof(float)) != 0) {
    std::fprintf(stderr, "attention_batch: the two ways gave different outputs\n");
    return 1;
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf(
      "attention head_dim %lld, heads %lld/%lld, n_kv %lld, %lld sequences, %d threads, %d "
      "layers, %s, %lld MiB read between sweeps; us per layer, median (best) of %d:\n"
      "  per-seq %.1f (%.1f)   backend %.1f (%.1f)   per-seq / backend %.2fx\n",
      static_cast<long long>(head_dim), static_cast<long long>(n_head),
      static_cast<long long>(n_kv_head), static_cast<long long>(n_kv),
      static_cast<long long>(n_seqs), threads, layers, cpu::IsaName(isa),
      static_cast<long long>(flush_mib), reps, median(ta), *std::min_element(ta.begin(), ta.end()),
      median(tb), *std::min_element(tb.begin(), tb.end()), median(ta) / median(tb));
  return 0;
}
