// matmul_rate: multiply-adds per second of cpu::MatMul for one weight type, shape, token count
// and thread count: seeded normal weights (std 0.02) quantized by the library's quantizer, unit
// normal activations. Best of REPS calls after one warm-up; prints one line. With the
// matrix in L2 (e.g. 2048 x 2048 Q8_0 rows are chunked to 128 KiB) it is the kernel's compute
// rate; compare builds of two commits by running each build's binary. A matrix far beyond the
// last-level cache (e.g. 65536 x 2048 Q4_K, 75 MB) streams its weights from memory.
// Weights the ISA has interleaved kernels for (K-quants; Q8_0 on AVX-512) are repacked
// (kernels/cpu/repack.h) as the engine does at load, on the ISA MatMul runs (GANNET_ISA);
// GANNET_REPACK=0 keeps the file layout, for an A/B of one build.
//
//   build/bin/matmul_rate q8_0 2048 2048 64 1      # type n_out n_in tokens threads [reps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/repack.h"
#include "tensor/quant/quant.h"

namespace {

bool ParseType(const std::string& name, gannet::DType* out) {
  using gannet::DType;
  for (const DType t : {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                        DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    if (name == gannet::DTypeName(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gannet;
  DType wtype;
  if (argc < 6 || !ParseType(argv[1], &wtype)) {
    std::fprintf(
        stderr,
        "usage: matmul_rate TYPE N_OUT N_IN TOKENS THREADS [REPS]  (TYPE: q4_0 q4_1 q5_0 q5_1 "
        "q8_0 q4_K q5_K q6_K)\n");
    return 2;
  }
  const int64_t n_out = std::atoll(argv[2]), n_in = std::atoll(argv[3]),
                n_tokens = std::atoll(argv[4]);
  const int threads = std::atoi(argv[5]), reps = argc > 6 ? std::atoi(argv[6]) : 7;
  const int64_t block = Traits(wtype).block_size;
  if (n_out < 1 || n_in < block || n_in % block != 0 || n_tokens < 1 || threads < 1 || reps < 1) {
    std::fprintf(
        stderr,
        "matmul_rate: need N_OUT >= 1, N_IN a multiple of %lld, TOKENS, THREADS, REPS >= 1\n",
        static_cast<long long>(block));
    return 2;
  }
  // Random weight rows quantized by the library's own quantizer: valid blocks of every type.
  const size_t row_bytes = static_cast<size_t>(*RowBytes(wtype, n_in));
  std::vector<uint8_t> w(row_bytes * n_out);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> row(n_in);
  for (int64_t r = 0; r < n_out; ++r) {
    for (float& v : row) v = normal(rng);
    if (!QuantizeRow(wtype, row.data(), w.data() + r * row_bytes, n_in)) {
      std::fprintf(stderr, "matmul_rate: cannot quantize to %s\n", argv[1]);
      return 2;
    }
  }
  std::vector<float> x(n_in * n_tokens), y(n_out * n_tokens);
  std::normal_distribution<float> unit(0.0f, 1.0f);
  for (float& v : x) v = unit(rng);
  ThreadPool pool(threads);
  // The kernel target GANNET_ISA names (when available here), else the best one.
  const char* isa_env = std::getenv("GANNET_ISA");
  const cpu::Isa isa = cpu::IsaByName(isa_env ? isa_env : "").value_or(cpu::BestIsa());
  const char* repack_env = std::getenv("GANNET_REPACK");
  const bool repack = cpu::CanRepackMatrix(wtype, isa, n_in) &&
                      !(repack_env != nullptr && std::strcmp(repack_env, "0") == 0);
  std::vector<uint8_t> w_repacked;
  if (repack) {
    w_repacked.resize(cpu::RepackedBytes(wtype, n_out, n_in));
    cpu::RepackRows(pool, wtype, w.data(), n_out, n_in, w_repacked.data());
    std::vector<uint8_t>().swap(w);
  }
  std::vector<uint8_t> scratch(cpu::MatMulScratchBytes(wtype, n_in, n_tokens, repack) + 64);
  const cpu::MatMulArgs a{.wtype = wtype,
                          .w = repack ? w_repacked.data() : w.data(),
                          .n_out = n_out,
                          .n_in = n_in,
                          .w_interleaved = repack,
                          .x = x.data(),
                          .x_stride = n_in,
                          .n_tokens = n_tokens,
                          .y = y.data(),
                          .y_stride = n_out,
                          .scratch = scratch.data()};
  double best = 1e30;
  for (int i = 0; i <= reps; ++i) {  // the first call warms caches and the pool
    const auto t0 = std::chrono::steady_clock::now();
    cpu::MatMul(pool, a, isa);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) best = std::min(best, s);
  }
  std::printf(
      "%s %lldx%lld x %lld tokens, %d threads, %s, %s: %.2f G multiply-adds/s (best of %d, %.3f "
      "ms)\n",
      argv[1], static_cast<long long>(n_out), static_cast<long long>(n_in),
      static_cast<long long>(n_tokens), threads, cpu::IsaName(isa),
      repack ? "repacked" : "file layout",
      static_cast<double>(n_out * n_in * n_tokens) / best / 1e9, reps, best * 1e3);
  return 0;
}
