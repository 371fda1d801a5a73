// MatMulGroup (the fused matmuls of the graph) against the unfused ops it replaces, bit for bit:
// separate MatMul calls, RmsNorm before them, Glu after a gate and an up MatMul. On every
// compiled ISA, mixed weight types (so several dot-partner types share one pass), odd shapes,
// token counts across tile edges and several thread counts; the scratch it asks for is all it
// touches.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/ops.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

struct Weights {
  DType type;
  int64_t n_out = 0, n_in = 0;
  std::vector<uint8_t> bytes;
};

Weights MakeWeights(std::mt19937& rng, DType type, int64_t n_out, int64_t n_in) {
  Weights w{type, n_out, n_in, {}};
  const size_t row_bytes = static_cast<size_t>(*RowBytes(type, n_in));
  w.bytes.resize(row_bytes * n_out);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> row(n_in);
  for (int64_t o = 0; o < n_out; ++o) {
    for (float& v : row) v = nd(rng);
    EXPECT_TRUE(QuantizeRow(type, row.data(), w.bytes.data() + o * row_bytes, n_in));
  }
  return w;
}

// [n_tokens, stride] activations with NaN gaps that must never be read.
std::vector<float> MakeX(std::mt19937& rng, int64_t n_tokens, int64_t n_in, int64_t stride) {
  std::vector<float> x(n_tokens * stride, std::nanf(""));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t i = 0; i < n_in; ++i)
      x[t * stride + i] = nd(rng) * (1.0f + static_cast<float>(t % 5));
  }
  return x;
}

std::vector<float> Separate(ThreadPool& pool, const Weights& w, const float* x, int64_t x_stride,
                            int64_t n_tokens, Isa isa) {
  std::vector<uint8_t> scratch(MatMulScratchBytes(w.type, w.n_in, n_tokens) + 64);
  std::vector<float> y(n_tokens * w.n_out);
  MatMul(pool,
         MatMulArgs{.wtype = w.type,
                    .w = w.bytes.data(),
                    .n_out = w.n_out,
                    .n_in = w.n_in,
                    .x = x,
                    .x_stride = x_stride,
                    .n_tokens = n_tokens,
                    .y = y.data(),
                    .y_stride = w.n_out,
                    .scratch = scratch.data()},
         isa);
  return y;
}

// Runs a group with exactly MatMulGroupScratchBytes of scratch followed by a guard zone.
void RunGroup(ThreadPool& pool, MatMulGroupArgs a, Isa isa) {
  constexpr size_t kGuard = 256;
  const size_t need = MatMulGroupScratchBytes(a);
  std::vector<uint8_t> scratch(need + kGuard, 0xA5);
  a.scratch = scratch.data();
  MatMulGroup(pool, a, isa);
  for (size_t i = need; i < need + kGuard; ++i)
    ASSERT_EQ(scratch[i], 0xA5) << "scratch overrun at " << i;
}

bool SameBits(const std::vector<float>& a, const float* b, int64_t rows, int64_t cols,
              int64_t b_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    if (std::memcmp(a.data() + r * cols, b + r * b_stride, cols * sizeof(float)) != 0) return false;
  }
  return true;
}

std::vector<Isa> Isas() {
  Isa isas[3];
  const int n = AvailableIsas(isas);
  return std::vector<Isa>(isas, isas + n);
}

struct GroupCase {
  std::vector<DType> types;
  std::vector<int64_t> n_outs;
  int64_t n_in;
};

// Q/K/V-like groups: mixed partners (Q8_0, Q8_1, Q8_K, f32) in one pass.
const GroupCase kGroups[] = {
    {{DType::kQ5_0, DType::kQ5_0, DType::kQ8_0}, {96, 32, 32}, 256},
    {{DType::kQ4_K, DType::kQ4_K, DType::kQ6_K}, {37, 9, 9}, 512},
    {{DType::kQ4_0, DType::kQ4_1, DType::kQ5_K, DType::kF16}, {13, 7, 5, 3}, 256},
    {{DType::kQ8_0, DType::kF32}, {1, 300}, 768},
    {{DType::kQ6_K}, {1000}, 256},
};

TEST(MatMulGroup, OutputsEqualSeparateMatMuls) {
  std::mt19937 rng(7);
  for (const GroupCase& g : kGroups) {
    std::vector<Weights> ws;
    for (size_t i = 0; i < g.types.size(); ++i)
      ws.push_back(MakeWeights(rng, g.types[i], g.n_outs[i], g.n_in));
    for (int64_t n_tokens : {1, 2, 5, 16, 17, 33}) {
      const int64_t stride = g.n_in + 5;
      const std::vector<float> x = MakeX(rng, n_tokens, g.n_in, stride);
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        for (Isa isa : Isas()) {
          SCOPED_TRACE(std::string(IsaName(isa)) + " tokens " + std::to_string(n_tokens) +
                       " threads " + std::to_string(threads) + " first type " +
                       std::string(DTypeName(g.types[0])));
          std::vector<std::vector<float>> ys;
          std::vector<MatMulOutput> outs;
          for (const Weights& w : ws) ys.emplace_back(n_tokens * (w.n_out + 2), std::nanf(""));
          for (size_t i = 0; i < ws.size(); ++i) {
            outs.push_back(MatMulOutput{.wtype = ws[i].type,
                                        .w = ws[i].bytes.data(),
                                        .n_out = ws[i].n_out,
                                        .y = ys[i].data(),
                                        .y_stride = ws[i].n_out + 2});
          }
          RunGroup(pool,
                   MatMulGroupArgs{.x = x.data(),
                                   .x_stride = stride,
                                   .n_in = g.n_in,
                                   .n_tokens = n_tokens,
                                   .outputs = outs.data(),
                                   .n_outputs = static_cast<int>(outs.size())},
                   isa);
          for (size_t i = 0; i < ws.size(); ++i) {
            const std::vector<float> want = Separate(pool, ws[i], x.data(), stride, n_tokens, isa);
            EXPECT_TRUE(SameBits(want, ys[i].data(), n_tokens, ws[i].n_out, ws[i].n_out + 2))
                << "output " << i;
            for (int64_t t = 0; t < n_tokens; ++t) {  // the stride gaps are left alone
              EXPECT_TRUE(std::isnan(ys[i][t * (ws[i].n_out + 2) + ws[i].n_out]));
            }
          }
        }
      }
    }
  }
}

TEST(MatMulGroup, PreNormEqualsRmsNormThenMatMul) {
  std::mt19937 rng(11);
  struct NormCase {
    std::vector<DType> types;
    int64_t n_in;
    bool weight;
  };
  // 9216 inputs: wider than a stack row (normalised rows go to the scratch); f32/f16 weights
  // read the normalised rows in place of x.
  const NormCase cases[] = {{{DType::kQ5_0, DType::kQ8_0}, 640, true},
                            {{DType::kQ4_K, DType::kQ6_K, DType::kF16}, 512, true},
                            {{DType::kQ8_0}, 9216, false},
                            {{DType::kF32}, 96, true}};
  for (const NormCase& c : cases) {
    std::vector<Weights> ws;
    for (DType t : c.types) ws.push_back(MakeWeights(rng, t, 19, c.n_in));
    std::vector<float> norm_w(c.n_in);
    std::normal_distribution<float> nd(1.0f, 0.3f);
    for (float& v : norm_w) v = nd(rng);
    for (int64_t n_tokens : {1, 4, 17}) {
      const int64_t stride = c.n_in + 3;
      const std::vector<float> x = MakeX(rng, n_tokens, c.n_in, stride);
      for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        for (Isa isa : Isas()) {
          SCOPED_TRACE(std::string(IsaName(isa)) + " n_in " + std::to_string(c.n_in) + " tokens " +
                       std::to_string(n_tokens) + " threads " + std::to_string(threads));
          const float* nw = c.weight ? norm_w.data() : nullptr;
          std::vector<float> normed(n_tokens * c.n_in);
          RmsNorm(x.data(), stride, nw, 1e-6f, n_tokens, c.n_in, normed.data(), c.n_in, isa);
          std::vector<std::vector<float>> ys;
          std::vector<MatMulOutput> outs;
          for (const Weights& w : ws) ys.emplace_back(n_tokens * w.n_out);
          for (size_t i = 0; i < ws.size(); ++i) {
            outs.push_back(MatMulOutput{.wtype = ws[i].type,
                                        .w = ws[i].bytes.data(),
                                        .n_out = ws[i].n_out,
                                        .y = ys[i].data(),
                                        .y_stride = ws[i].n_out});
          }
          RunGroup(pool,
                   MatMulGroupArgs{.x = x.data(),
                                   .x_stride = stride,
                                   .n_in = c.n_in,
                                   .n_tokens = n_tokens,
                                   .outputs = outs.data(),
                                   .n_outputs = static_cast<int>(outs.size()),
                                   .pre_norm = true,
                                   .norm_weight = nw,
                                   .norm_eps = 1e-6f},
                   isa);
          for (size_t i = 0; i < ws.size(); ++i) {
            const std::vector<float> want =
                Separate(pool, ws[i], normed.data(), c.n_in, n_tokens, isa);
            EXPECT_TRUE(SameBits(want, ys[i].data(), n_tokens, ws[i].n_out, ws[i].n_out))
                << "output " << i;
          }
        }
      }
    }
  }
}

TEST(MatMulGroup, GluPairEqualsGateUpThenGlu) {
  std::mt19937 rng(13);
  struct GluCase {
    DType gate, up;
    int64_t n_ff, n_in;
    bool pre_norm;
  };
  // Mixed tile widths (16-token Q5_0 with 4-token Q4_K), n_ff not a multiple of 8 or 4, and
  // enough rows for many chunks.
  const GluCase cases[] = {{DType::kQ5_0, DType::kQ5_0, 2048, 640, false},
                           {DType::kQ5_0, DType::kQ4_K, 203, 512, true},
                           {DType::kQ6_K, DType::kF16, 37, 256, false},
                           {DType::kQ8_0, DType::kQ4_1, 1, 64, true}};
  for (const GluCase& c : cases) {
    const Weights gate = MakeWeights(rng, c.gate, c.n_ff, c.n_in);
    const Weights up = MakeWeights(rng, c.up, c.n_ff, c.n_in);
    for (GluAct act : {GluAct::kGeluTanh, GluAct::kSilu}) {
      for (int64_t n_tokens : {1, 3, 16, 21}) {
        const int64_t stride = c.n_in + 1;
        const std::vector<float> x = MakeX(rng, n_tokens, c.n_in, stride);
        for (int threads : {1, 2, 3}) {
          ThreadPool pool(threads);
          for (Isa isa : Isas()) {
            SCOPED_TRACE(std::string(IsaName(isa)) + " gate " + std::string(DTypeName(c.gate)) +
                         " n_ff " + std::to_string(c.n_ff) + " tokens " + std::to_string(n_tokens) +
                         " threads " + std::to_string(threads));
            std::vector<float> normed(n_tokens * c.n_in);
            const float* in = x.data();
            int64_t in_stride = stride;
            if (c.pre_norm) {
              RmsNorm(x.data(), stride, nullptr, 1e-5f, n_tokens, c.n_in, normed.data(), c.n_in,
                      isa);
              in = normed.data();
              in_stride = c.n_in;
            }
            const std::vector<float> g = Separate(pool, gate, in, in_stride, n_tokens, isa);
            const std::vector<float> u = Separate(pool, up, in, in_stride, n_tokens, isa);
            std::vector<float> want(n_tokens * c.n_ff);
            Glu(act, g.data(), u.data(), n_tokens * c.n_ff, want.data(), isa);

            std::vector<float> y(n_tokens * c.n_ff, std::nanf(""));
            const MatMulOutput outs[2] = {
                {.wtype = gate.type,
                 .w = gate.bytes.data(),
                 .n_out = c.n_ff,
                 .y = y.data(),
                 .y_stride = c.n_ff},
                {.wtype = up.type, .w = up.bytes.data(), .n_out = c.n_ff}};
            RunGroup(pool,
                     MatMulGroupArgs{.x = x.data(),
                                     .x_stride = stride,
                                     .n_in = c.n_in,
                                     .n_tokens = n_tokens,
                                     .outputs = outs,
                                     .n_outputs = 2,
                                     .pre_norm = c.pre_norm,
                                     .norm_eps = 1e-5f,
                                     .glu = true,
                                     .act = act},
                     isa);
            EXPECT_TRUE(SameBits(want, y.data(), n_tokens, c.n_ff, c.n_ff));
          }
        }
      }
    }
  }
}

TEST(MatMulGroup, ScratchBytes) {
  const MatMulOutput q8{.wtype = DType::kQ8_0, .n_out = 4};
  const MatMulOutput k4{.wtype = DType::kQ4_K, .n_out = 4};
  const MatMulOutput f32{.wtype = DType::kF32, .n_out = 4};
  // One output: exactly what MatMul needs.
  EXPECT_EQ(MatMulGroupScratchBytes({.n_in = 256, .n_tokens = 3, .outputs = &q8, .n_outputs = 1}),
            MatMulScratchBytes(DType::kQ8_0, 256, 3));
  EXPECT_EQ(MatMulGroupScratchBytes({.n_in = 256, .n_tokens = 3, .outputs = &f32, .n_outputs = 1}),
            0u);
  // Two partner types: both activation copies.
  const MatMulOutput two[2] = {q8, k4};
  EXPECT_GE(MatMulGroupScratchBytes({.n_in = 256, .n_tokens = 3, .outputs = two, .n_outputs = 2}),
            MatMulScratchBytes(DType::kQ8_0, 256, 3) + MatMulScratchBytes(DType::kQ4_K, 256, 3));
  // Normalised f32 rows are kept only when an f32-partner weight reads them.
  EXPECT_EQ(MatMulGroupScratchBytes(
                {.n_in = 256, .n_tokens = 3, .outputs = &f32, .n_outputs = 1, .pre_norm = true}),
            256u * 3 * sizeof(float));
}

}  // namespace
}  // namespace gannet::cpu
