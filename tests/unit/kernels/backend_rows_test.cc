// CpuBackend's row-wise ops split over its pool (RmsNorm, AddRmsNorm, Rope) and Rope's cos/sin
// tables kept across calls: every call must give the bits of the plain single-call ops, whether
// the rows were split or not and whether the table was made for it or reused (a call with other
// positions, other parameters or other frequency factors behind the same pointer must not reuse
// one).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "conformance_util.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/ops.h"

namespace gannet::cpu {
namespace {

using conformance::Isas;
using conformance::RandomVector;

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(BackendRows, NormsHaveTheBitsOfOneCall) {
  std::mt19937 rng(5);
  for (Isa isa : Isas()) {
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      CpuBackend backend(pool, isa);
      for (int64_t rows : {1, 2, 7, 16, 33}) {
        for (int64_t cols : {64, 640, 1000}) {
          SCOPED_TRACE(std::string(IsaName(isa)) + " threads=" + std::to_string(threads) +
                       " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
          const std::vector<float> x = RandomVector(rng, rows * cols, -3.0f, 3.0f);
          const std::vector<float> r = RandomVector(rng, rows * cols, -3.0f, 3.0f);
          const std::vector<float> w = RandomVector(rng, cols, 0.5f, 1.5f);
          std::vector<float> got(x.size()), want(x.size());
          backend.RmsNorm(x.data(), w.data(), 1e-6f, rows, cols, got.data());
          cpu::RmsNorm(x.data(), cols, w.data(), 1e-6f, rows, cols, want.data(), cols, isa);
          ASSERT_TRUE(SameBits(got, want));
          backend.AddRmsNorm(r.data(), x.data(), w.data(), 1e-6f, rows, cols, got.data());
          cpu::RmsNorm(x.data(), cols, w.data(), 1e-6f, rows, cols, want.data(), cols, isa);
          cpu::Add(r.data(), want.data(), rows * cols, want.data(), isa);
          ASSERT_TRUE(SameBits(got, want));
        }
      }
    }
  }
}

TEST(BackendRows, RopeReusesTablesOnlyForTheSamePositionsAndParameters) {
  std::mt19937 rng(6);
  std::vector<float> factors = RandomVector(rng, 128, 1.0f, 8.0f);
  struct Call {
    kernels::RopeParams p;
    std::vector<int32_t> pos;
    bool change_factors;  // rewrite the factors' values (same pointer) before this call
  };
  const kernels::RopeParams local{.n_heads = 4,
                                  .head_dim = 256,
                                  .n_rot = 256,
                                  .mode = kernels::RopeMode::kNeox,
                                  .base = 10000.0f};
  kernels::RopeParams global = local;
  global.base = 1000000.0f;
  kernels::RopeParams interleaved = local;
  interleaved.mode = kernels::RopeMode::kNorm;
  interleaved.n_heads = 1;
  kernels::RopeParams with_factors = local;
  with_factors.freq_factors = factors.data();
  kernels::RopeParams yarn = local;
  yarn.ext_factor = 1.0f;
  yarn.freq_scale = 0.25f;
  yarn.n_ctx_orig = 4096;
  kernels::RopeParams partial = local;
  partial.n_rot = 64;
  std::vector<int32_t> p1(24), p2(24), p3(3);
  for (int i = 0; i < 24; ++i) {
    p1[i] = 100 + i;
    p2[i] = 100 + i + (i == 23);  // one position differs
  }
  p3 = {7, 0, 4000};
  const std::vector<Call> calls = {
      {local, p1, false},        {global, p1, false},       {local, p1, false},  // hits
      {global, p1, false},       {local, p2, false},        {local, p1, false},
      {interleaved, p1, false},  {with_factors, p1, false}, {with_factors, p1, true},
      {with_factors, p1, false}, {yarn, p1, false},         {local, p3, false},
      {partial, p3, false},      {global, p3, false},       {global, p3, false}};
  for (Isa isa : Isas()) {
    for (int threads : {1, 3}) {
      ThreadPool pool(threads);
      CpuBackend backend(pool, isa);
      int k = 0;
      for (const Call& c : calls) {
        SCOPED_TRACE(std::string(IsaName(isa)) + " threads=" + std::to_string(threads) + " call " +
                     std::to_string(k++));
        if (c.change_factors) {
          for (float& f : factors) f *= 1.5f;
        }
        const int64_t n = static_cast<int64_t>(c.pos.size());
        const int64_t cols = c.p.n_heads * c.p.head_dim;
        const std::vector<float> x = RandomVector(rng, n * cols, -2.0f, 2.0f);
        std::vector<float> got(x.size()), want = x;
        backend.Rope(c.p, x.data(), n, c.pos.data(), got.data());
        Rope(RopeArgs{.x = want.data(),
                      .x_stride = cols,
                      .n_tokens = n,
                      .n_heads = c.p.n_heads,
                      .head_dim = c.p.head_dim,
                      .n_rot = c.p.n_rot,
                      .pos = c.pos.data(),
                      .mode = c.p.mode,
                      .base = c.p.base,
                      .freq_scale = c.p.freq_scale,
                      .freq_factors = c.p.freq_factors,
                      .attn_factor = c.p.attn_factor,
                      .ext_factor = c.p.ext_factor,
                      .beta_fast = c.p.beta_fast,
                      .beta_slow = c.p.beta_slow,
                      .n_ctx_orig = c.p.n_ctx_orig});
        ASSERT_TRUE(SameBits(got, want));
        // In place too (x == out).
        std::vector<float> in_place = x;
        backend.Rope(c.p, in_place.data(), n, c.pos.data(), in_place.data());
        ASSERT_TRUE(SameBits(in_place, want));
      }
    }
  }
}

}  // namespace
}  // namespace gannet::cpu
