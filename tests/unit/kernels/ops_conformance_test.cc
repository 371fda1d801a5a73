// Conformance of the CPU ops (kernels/cpu/ops.h) for every ISA target this machine runs: each op
// against its scalar reference twin (kernels/cpu/ref.h) on odd shapes, and the twins against
// independent textbook formulas in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/thread_pool.h"
#include "conformance_util.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ref.h"
#include "tensor/dtype.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

using conformance::FillCache;
using conformance::Isas;
using conformance::Pool;
using conformance::RandomVector;
using conformance::TestCache;

TEST(StoreKv, MatchesReferenceAndRoundsToNearestEven) {
  std::mt19937 rng(1);
  const int64_t row = 3 * 80;
  TestCache a(40, row, 16, rng), b(40, row, 16, rng);
  std::vector<float> k = RandomVector(rng, 7 * row, -70000.0f, 70000.0f);
  std::vector<float> v = RandomVector(rng, 7 * row, -1e-6f, 1e-6f);  // subnormal halves
  k[0] = 1.0f + 0x1p-11f;                                            // halfway: ties to even -> 1.0
  k[1] = 1.0f + 3 * 0x1p-11f;  // halfway: ties to even -> 1 + 2^-9
  const std::vector<int32_t> pos = {5, 0, 15, 16, 39, 17, 31};
  StoreKv(k.data(), row, v.data(), row, 7, row, pos.data(), a.k_table.data(), a.v_table.data(), 16);
  ref::StoreKv(k.data(), row, v.data(), row, 7, row, pos.data(), b.k_table.data(), b.v_table.data(),
               16);
  for (int64_t t = 0; t < 7; ++t) {
    for (int64_t i = 0; i < row; ++i) {
      const int64_t p = pos[t];
      const uint16_t* ka = a.k_table[p / 16] + (p % 16) * row + i;
      const uint16_t* kb = b.k_table[p / 16] + (p % 16) * row + i;
      const uint16_t* va = a.v_table[p / 16] + (p % 16) * row + i;
      const uint16_t* vb = b.v_table[p / 16] + (p % 16) * row + i;
      ASSERT_EQ(*ka, *kb);
      ASSERT_EQ(*va, *vb);
      ASSERT_EQ(*ka, F32ToF16(k[t * row + i]));
      ASSERT_EQ(*va, F32ToF16(v[t * row + i]));
    }
  }
  EXPECT_EQ(a.k_table[0][5 * row + 0], 0x3C00);
  EXPECT_EQ(a.k_table[0][5 * row + 1], 0x3C02);
}

TEST(StoreKv, EveryIsaConvertsSpecialValuesAndTailsAsF32ToF16) {
  std::mt19937 rng(2);
  auto from_bits = [](uint32_t b) {
    float f;
    std::memcpy(&f, &b, sizeof(f));
    return f;
  };
  // NaNs with payloads (quiet and signalling, both signs), infinities, the overflow edge, ties at
  // the subnormal edge, signed zeros, then random values over the whole range.
  const std::vector<float> specials = {from_bits(0x7FC00000u),
                                       from_bits(0xFFC00001u),
                                       from_bits(0x7FA00001u),
                                       from_bits(0xFF812345u),
                                       from_bits(0x7F800000u),
                                       from_bits(0xFF800000u),
                                       65504.0f,
                                       65519.0f,
                                       65520.0f,
                                       -65520.0f,
                                       0x1p-25f,
                                       -0x1p-25f,
                                       0x1.8p-25f,
                                       0x1p-24f,
                                       0x1.8p-24f,
                                       0x1p-14f,
                                       0x1.ffcp-15f,
                                       0.0f,
                                       -0.0f,
                                       1.0f + 0x1p-11f,
                                       1.0f + 3 * 0x1p-11f};
  for (int64_t row : {int64_t{13}, int64_t{24}, int64_t{7}, int64_t{257}}) {
    std::vector<float> k = RandomVector(rng, 3 * row, -70000.0f, 70000.0f);
    std::vector<float> v = RandomVector(rng, 3 * row, -1e-6f, 1e-6f);
    for (size_t i = 0; i < specials.size() && i < k.size(); ++i) {
      k[k.size() - 1 - i] = specials[i];  // the tail, past the last whole group of 8
      v[i] = specials[i];
    }
    const std::vector<int32_t> pos = {3, 0, 17};
    for (Isa isa : Isas()) {
      SCOPED_TRACE(std::string(IsaName(isa)) + " row=" + std::to_string(row));
      TestCache c(32, row, 16, rng);
      StoreKv(k.data(), row, v.data(), row, 3, row, pos.data(), c.k_table.data(), c.v_table.data(),
              16, isa);
      for (int64_t t = 0; t < 3; ++t) {
        const int64_t p = pos[t];
        for (int64_t i = 0; i < row; ++i) {
          ASSERT_EQ(c.k_table[p / 16][(p % 16) * row + i], F32ToF16(k[t * row + i]))
              << "k t=" << t << " i=" << i;
          ASSERT_EQ(c.v_table[p / 16][(p % 16) * row + i], F32ToF16(v[t * row + i]))
              << "v t=" << t << " i=" << i;
        }
      }
    }
  }
}

// ---- attention ---------------------------------------------------------------------------

struct AttnCase {
  int64_t head_dim, n_head, n_kv_head, n_kv, window, n_tokens, block_size;
  float scale;
};

std::string Describe(const AttnCase& c) {
  return "head_dim=" + std::to_string(c.head_dim) + " heads=" + std::to_string(c.n_head) + "/" +
         std::to_string(c.n_kv_head) + " n_kv=" + std::to_string(c.n_kv) +
         " window=" + std::to_string(c.window) + " n_tokens=" + std::to_string(c.n_tokens) +
         " block_size=" + std::to_string(c.block_size) + " scale=" + std::to_string(c.scale);
}

// Queries are the last n_tokens positions of the cache (a decode step, or a prefill chunk
// starting mid-cache), with padded strides.
void CheckAttention(const AttnCase& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c));
  std::mt19937 rng(seed);
  const int64_t row = c.n_kv_head * c.head_dim;
  TestCache cache(c.n_kv + 3, row, c.block_size, rng);
  FillCache(cache, c.n_kv, rng);
  const int64_t q_stride = c.n_head * c.head_dim + 5;
  const int64_t out_stride = c.n_head * c.head_dim + 3;
  std::vector<float> q = RandomVector(rng, c.n_tokens * q_stride);
  std::vector<int32_t> pos(c.n_tokens);
  for (int64_t t = 0; t < c.n_tokens; ++t) pos[t] = static_cast<int32_t>(c.n_kv - c.n_tokens + t);
  AttentionArgs args{.q = q.data(),
                     .q_stride = q_stride,
                     .n_tokens = c.n_tokens,
                     .n_head = c.n_head,
                     .n_kv_head = c.n_kv_head,
                     .head_dim = c.head_dim,
                     .q_pos = pos.data(),
                     .kv = cache.View(),
                     .n_kv = c.n_kv,
                     .window = c.window,
                     .scale = c.scale,
                     .out = nullptr,
                     .out_stride = out_stride};
  std::vector<float> want(c.n_tokens * out_stride, 0.0f);
  args.out = want.data();
  ref::Attention(args);
  for (Isa isa : Isas()) {
    for (int threads : {1, 3}) {
      SCOPED_TRACE(std::string(IsaName(isa)) + " threads=" + std::to_string(threads));
      std::vector<float> got(c.n_tokens * out_stride, 0.0f);
      args.out = got.data();
      Attention(Pool(threads), args, isa);
      for (int64_t t = 0; t < c.n_tokens; ++t) {
        for (int64_t i = 0; i < c.n_head * c.head_dim; ++i) {
          const float w = want[t * out_stride + i], g = got[t * out_stride + i];
          ASSERT_NEAR(g, w, 2e-5f)
              << "t=" << t << " head=" << i / c.head_dim << " dim=" << i % c.head_dim;
        }
      }
    }
  }
}

TEST(Attention, MatchesReferenceOnOddShapes) {
  struct Heads {
    int64_t n_head, n_kv_head;
  };
  uint32_t seed = 100;
  int variant = 0;
  for (int64_t head_dim : {64, 80, 128, 256}) {
    for (Heads h : {Heads{4, 1}, Heads{8, 8}, Heads{32, 8}}) {
      for (int64_t n_kv : {1, 17, 600}) {
        for (int64_t window : {0, 512}) {
          ++variant;
          // Alternate the layout and a sharp score scale (large, changing maxima exercise
          // the online-softmax rescaling); keep the big heads/long-cache prefill cheap.
          const int64_t block_size = variant % 2 ? 16 : n_kv + 3;
          const float scale = (variant % 3 ? 1.0f : 4.0f) / std::sqrt(static_cast<float>(head_dim));
          CheckAttention({head_dim, h.n_head, h.n_kv_head, n_kv, window, 1, block_size, scale},
                         seed++);
          const int64_t chunk = std::min<int64_t>(n_kv, h.n_head >= 32 ? 3 : 7);
          CheckAttention({head_dim, h.n_head, h.n_kv_head, n_kv, window, chunk,
                          variant % 2 ? n_kv + 3 : 16, scale},
                         seed++);
        }
      }
    }
  }
}

TEST(Attention, LongPrefillAcrossTheWindowEdge) {
  // 100 queries at positions 500..599 with window 512: early ones see every key, later ones
  // lose the oldest; tile boundaries fall at different offsets for each query.
  CheckAttention({64, 4, 1, 600, 512, 100, 16, 2.0f}, 7);
  CheckAttention({128, 8, 2, 600, 0, 100, 603, 0.3f}, 8);
}

TEST(Attention, LargeGroupsAndOddHeadDims) {
  // Groups wider than one work item (12 and 16 query heads per kv head), head dims that are
  // not a multiple of the vector width, and a block size that is not a power of two.
  CheckAttention({64, 16, 1, 600, 0, 5, 16, 0.5f}, 12);
  CheckAttention({64, 12, 1, 300, 100, 1, 16, 0.5f}, 13);
  CheckAttention({20, 3, 1, 40, 0, 5, 16, 0.4f}, 14);
  CheckAttention({36, 6, 2, 90, 7, 11, 5, 1.0f}, 15);
  CheckAttention({1, 2, 1, 17, 0, 4, 3, 1.0f}, 16);
}

TEST(Attention, GemmaDecodeShape) {
  // Gemma 3 270M: 4 query heads on one kv head of 256, a decode step on a long cache.
  CheckAttention({256, 4, 1, 2000, 0, 1, 16, 1.0f / 16.0f}, 9);
  CheckAttention({256, 4, 1, 2000, 512, 1, 2003, 1.0f / 16.0f}, 10);
}

// Batch invariance: a query row's output must not depend on the other rows of the call or on
// the thread count, bit for bit (serving batches unrelated requests; speculative decoding checks
// a draft in one pass and must reproduce what one-token steps would have given). A chunk of rows
// at 1, 2 and 3 threads against each row alone on one thread, on shapes whose work is split by
// head (few rows) and by (row, group) (many), with tails in the head dim and the key tiles.
TEST(Attention, EveryRowHasTheBitsOfItsOwnDecodeStep) {
  struct Shape {
    int64_t head_dim, n_head, n_kv_head, n_kv, n_tokens, window;
  };
  uint32_t seed = 40;
  for (Shape c :
       {Shape{64, 9, 3, 577, 1, 0}, Shape{64, 9, 3, 300, 3, 0}, Shape{64, 9, 3, 70, 12, 0},
        Shape{256, 4, 1, 130, 2, 0}, Shape{256, 4, 1, 90, 9, 40}, Shape{80, 12, 1, 45, 5, 0},
        Shape{20, 3, 1, 33, 6, 0}, Shape{36, 6, 2, 41, 4, 7},
        // Group sizes 1, 2, 5, 6 and 7 (a decode tile's heads go 4 or fewer at a time).
        Shape{128, 8, 8, 50, 5, 0}, Shape{64, 12, 6, 71, 3, 0}, Shape{64, 10, 2, 70, 3, 0},
        Shape{96, 6, 1, 65, 3, 0}, Shape{128, 14, 2, 103, 4, 0},
        // Prefill chunks past 64 rows (blocks of 64 split by tiles; a window's rows share none).
        Shape{64, 9, 3, 300, 150, 0}, Shape{256, 4, 1, 200, 130, 0}, Shape{128, 8, 8, 180, 70, 0},
        Shape{64, 6, 2, 260, 140, 50}}) {
    SCOPED_TRACE("head_dim=" + std::to_string(c.head_dim) + " heads=" + std::to_string(c.n_head) +
                 "/" + std::to_string(c.n_kv_head) + " n_kv=" + std::to_string(c.n_kv) +
                 " tokens=" + std::to_string(c.n_tokens));
    std::mt19937 rng(seed++);
    const int64_t row = c.n_kv_head * c.head_dim, width = c.n_head * c.head_dim;
    TestCache cache(c.n_kv, row, 16, rng);
    FillCache(cache, c.n_kv, rng);
    std::vector<float> q = RandomVector(rng, c.n_tokens * width, -2.0f, 2.0f);
    std::vector<int32_t> pos(c.n_tokens);
    for (int64_t t = 0; t < c.n_tokens; ++t) pos[t] = static_cast<int32_t>(c.n_kv - c.n_tokens + t);
    const AttentionArgs base{.q = q.data(),
                             .q_stride = width,
                             .n_tokens = c.n_tokens,
                             .n_head = c.n_head,
                             .n_kv_head = c.n_kv_head,
                             .head_dim = c.head_dim,
                             .q_pos = pos.data(),
                             .kv = cache.View(),
                             .n_kv = c.n_kv,
                             .window = c.window,
                             .scale = 0.3f,
                             .out = nullptr,
                             .out_stride = width};
    for (Isa isa : Isas()) {
      SCOPED_TRACE(IsaName(isa));
      std::vector<float> alone(c.n_tokens * width);
      for (int64_t t = 0; t < c.n_tokens; ++t) {
        AttentionArgs one = base;
        one.q = q.data() + t * width;
        one.n_tokens = 1;
        one.q_pos = pos.data() + t;
        one.out = alone.data() + t * width;
        Attention(Pool(1), one, isa);
      }
      for (int threads : {1, 2, 3}) {
        std::vector<float> together(c.n_tokens * width);
        AttentionArgs all = base;
        all.out = together.data();
        Attention(Pool(threads), all, isa);
        ASSERT_EQ(0, std::memcmp(together.data(), alone.data(), together.size() * sizeof(float)))
            << "threads=" << threads;
      }
    }
  }
}

TEST(Attention, QueryThatSeesNoKeyGivesZeros) {
  std::mt19937 rng(3);
  TestCache cache(32, 64, 16, rng);
  FillCache(cache, 4, rng);
  std::vector<float> q = RandomVector(rng, 2 * 64);
  const std::vector<int32_t> pos = {-1, 2};
  for (Isa isa : Isas()) {
    std::vector<float> out(2 * 64, 7.0f);
    AttentionArgs args{.q = q.data(),
                       .q_stride = 64,
                       .n_tokens = 2,
                       .n_head = 1,
                       .n_kv_head = 1,
                       .head_dim = 64,
                       .q_pos = pos.data(),
                       .kv = cache.View(),
                       .n_kv = 4,
                       .window = 0,
                       .scale = 0.125f,
                       .out = out.data(),
                       .out_stride = 64};
    Attention(Pool(3), args, isa);
    for (int i = 0; i < 64; ++i) EXPECT_EQ(out[i], 0.0f) << IsaName(isa);
    EXPECT_TRUE(std::isfinite(out[64]));
  }
}

// The reference against a textbook formulation: full [n_tokens, n_kv] score matrix, masked
// entries -inf, softmax in double, explicit GQA head mapping.
TEST(Attention, ReferenceMatchesNaiveSoftmax) {
  std::mt19937 rng(11);
  const int64_t d = 24, n_head = 6, n_kv_head = 2, n_kv = 40, n_tokens = 9, window = 10;
  TestCache cache(n_kv, n_kv_head * d, 16, rng);
  FillCache(cache, n_kv, rng);
  std::vector<float> q = RandomVector(rng, n_tokens * n_head * d, -2.0f, 2.0f);
  std::vector<int32_t> pos(n_tokens);
  for (int64_t t = 0; t < n_tokens; ++t) pos[t] = static_cast<int32_t>(4 * t + 3);
  std::vector<float> got(n_tokens * n_head * d);
  const float scale = 0.7f;
  AttentionArgs args{.q = q.data(),
                     .q_stride = n_head * d,
                     .n_tokens = n_tokens,
                     .n_head = n_head,
                     .n_kv_head = n_kv_head,
                     .head_dim = d,
                     .q_pos = pos.data(),
                     .kv = cache.View(),
                     .n_kv = n_kv,
                     .window = window,
                     .scale = scale,
                     .out = got.data(),
                     .out_stride = n_head * d};
  ref::Attention(args);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kvh = h / (n_head / n_kv_head);
      std::vector<double> s(n_kv);
      for (int64_t p = 0; p < n_kv; ++p) {
        const bool visible = p <= pos[t] && pos[t] - p < window;
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i)
          dot += q[(t * n_head + h) * d + i] * cache.K(p, kvh * d + i);
        s[p] = visible ? scale * dot : -INFINITY;
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double z = 0.0;
      for (double& x : s) z += (x = std::exp(x - mx));
      for (int64_t i = 0; i < d; ++i) {
        double o = 0.0;
        for (int64_t p = 0; p < n_kv; ++p) o += s[p] / z * cache.V(p, kvh * d + i);
        EXPECT_NEAR(got[(t * n_head + h) * d + i], o, 1e-6) << "t=" << t << " h=" << h;
      }
    }
  }
}

// ---- RMSNorm -----------------------------------------------------------------------------

TEST(RmsNorm, MatchesReferenceAndFormula) {
  std::mt19937 rng(21);
  for (int64_t rows : {1, 7, 255}) {
    for (int64_t cols : {1, 7, 255, 4097}) {
      const int64_t stride = cols + 3;
      std::vector<float> x = RandomVector(rng, rows * stride, -3.0f, 3.0f);
      std::vector<float> w = RandomVector(rng, cols, 0.5f, 1.5f);
      for (const float* wp :
           {static_cast<const float*>(nullptr), static_cast<const float*>(w.data())}) {
        SCOPED_TRACE("rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
                     (wp ? " weighted" : ""));
        std::vector<float> want(rows * stride);
        ref::RmsNorm(x.data(), stride, wp, 1e-6f, rows, cols, want.data(), stride);
        for (int64_t r = 0; r < rows; ++r) {  // textbook formula in double
          double ss = 0.0;
          for (int64_t i = 0; i < cols; ++i) ss += double{x[r * stride + i]} * x[r * stride + i];
          const double inv = 1.0 / std::sqrt(ss / cols + 1e-6);
          for (int64_t i = 0; i < cols; ++i) {
            const double e = x[r * stride + i] * inv * (wp ? wp[i] : 1.0);
            ASSERT_NEAR(want[r * stride + i], e, 1e-6 * (std::fabs(e) + 1e-3));
          }
        }
        for (Isa isa : Isas()) {
          std::vector<float> got(rows * stride);
          RmsNorm(x.data(), stride, wp, 1e-6f, rows, cols, got.data(), stride, isa);
          std::vector<float> in_place = x;  // out == x
          RmsNorm(in_place.data(), stride, wp, 1e-6f, rows, cols, in_place.data(), stride, isa);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t i = 0; i < cols; ++i) {
              const float e = want[r * stride + i];
              ASSERT_NEAR(got[r * stride + i], e, 4e-6f * std::fabs(e) + 1e-9f) << IsaName(isa);
              ASSERT_EQ(in_place[r * stride + i], got[r * stride + i]) << IsaName(isa);
            }
          }
        }
      }
    }
  }
}

// ---- RoPE --------------------------------------------------------------------------------

// Direct formula in double: angle pos * freq_scale * base^(-2i/n_rot) / ff_i (no YaRN).
void RopeDirect(const RopeArgs& a, const std::vector<float>& in, std::vector<double>& out) {
  out.assign(in.begin(), in.end());
  const int64_t half = a.n_rot / 2;
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t o = t * a.x_stride + h * a.head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const double ff = a.freq_factors ? a.freq_factors[i] : 1.0;
        const double th =
            a.pos[t] * double{a.freq_scale} * std::pow(double{a.base}, -2.0 * i / a.n_rot) / ff;
        const int64_t i0 = a.mode == RopeMode::kNorm ? 2 * i : i;
        const int64_t i1 = a.mode == RopeMode::kNorm ? 2 * i + 1 : i + half;
        const double x0 = in[o + i0], x1 = in[o + i1];
        out[o + i0] = a.attn_factor * (x0 * std::cos(th) - x1 * std::sin(th));
        out[o + i1] = a.attn_factor * (x0 * std::sin(th) + x1 * std::cos(th));
      }
    }
  }
}

TEST(Rope, MatchesReferenceAndDirectFormula) {
  std::mt19937 rng(31);
  struct Cfg {
    RopeMode mode;
    int64_t head_dim, n_rot, n_heads;
    float base, freq_scale;
    bool ff;
  };
  const Cfg cfgs[] = {
      {RopeMode::kNorm, 64, 64, 4, 10000.0f, 1.0f, false},
      {RopeMode::kNorm, 128, 96, 3, 500000.0f, 1.0f, true},     // partial rotation, factors
      {RopeMode::kNeox, 256, 256, 4, 1000000.0f, 1.0f, false},  // Gemma 3 global layer
      {RopeMode::kNeox, 80, 64, 7, 10000.0f, 0.25f, false},     // linear scaling, partial
      {RopeMode::kNeox, 128, 128, 1, 10000.0f, 1.0f, true},
  };
  for (const Cfg& c : cfgs) {
    SCOPED_TRACE("mode=" + std::to_string(static_cast<int>(c.mode)) +
                 " head_dim=" + std::to_string(c.head_dim) + " n_rot=" + std::to_string(c.n_rot));
    const int64_t n_tokens = 7;
    const int64_t stride = c.n_heads * c.head_dim + 2;
    std::vector<float> x = RandomVector(rng, n_tokens * stride);
    std::vector<float> ff = RandomVector(rng, c.n_rot / 2, 1.0f, 8.0f);
    const std::vector<int32_t> pos = {0, 1, 2, 17, 100, 255, 300};
    RopeArgs a{.x = nullptr,
               .x_stride = stride,
               .n_tokens = n_tokens,
               .n_heads = c.n_heads,
               .head_dim = c.head_dim,
               .n_rot = c.n_rot,
               .pos = pos.data(),
               .mode = c.mode,
               .base = c.base,
               .freq_scale = c.freq_scale,
               .freq_factors = c.ff ? ff.data() : nullptr,
               .attn_factor = 1.0f};
    std::vector<float> want = x, got = x;
    a.x = want.data();
    ref::Rope(a);
    a.x = got.data();
    Rope(a);
    std::vector<double> direct;
    RopeDirect(a, x, direct);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t i = 0; i < c.n_heads * c.head_dim; ++i) {
        const int64_t k = t * stride + i;
        ASSERT_EQ(got[k], want[k]) << "t=" << t << " i=" << i;
        // f32 angles: pos * theta_scale^i by repeated multiplication drifts ~1e-7 * i relative.
        ASSERT_NEAR(want[k], direct[k], 2e-4) << "t=" << t << " i=" << i;
        if (i % c.head_dim >= c.n_rot) {
          ASSERT_EQ(want[k], x[k]);  // pass-through dims
        }
      }
    }
  }
}

TEST(Rope, YarnHandCheckedCase) {
  // n_rot 4, base 1e4, n_ctx_orig 4096, beta 32/1: corr dims = [floor(0.6546), ceil(1.4071)]
  // = [0, 2]. Pair 0: ramp 1, full extrapolation, angle = pos = 10. Pair 1: theta_extrap =
  // 10 * 1e4^-0.5 = 0.1, ramp 0.5, angle = 0.5 * 0.25 * 0.1 + 0.5 * 0.1 = 0.0625.
  // Magnitude 1 + 0.1 ln(1 / 0.25) = 1.1386294.
  float dims[2];
  ref::RopeYarnCorrDims(4, 4096, 10000.0f, 32.0f, 1.0f, dims);
  EXPECT_EQ(dims[0], 0.0f);
  EXPECT_EQ(dims[1], 2.0f);
  const int32_t pos = 10;
  const double m = 1.0 + 0.1 * std::log(4.0);
  const double want_norm[4] = {m * std::cos(10.0), m * std::sin(10.0), m * std::cos(0.0625),
                               m * std::sin(0.0625)};
  for (RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    // x = (1, 0) in each pair, so the output is (cos, sin) * magnitude.
    std::vector<float> x =
        mode == RopeMode::kNorm ? std::vector<float>{1, 0, 1, 0} : std::vector<float>{1, 1, 0, 0};
    std::vector<float> y = x;
    RopeArgs a{.x = x.data(),
               .x_stride = 4,
               .n_tokens = 1,
               .n_heads = 1,
               .head_dim = 4,
               .n_rot = 4,
               .pos = &pos,
               .mode = mode,
               .base = 10000.0f,
               .freq_scale = 0.25f,
               .freq_factors = nullptr,
               .attn_factor = 1.0f,
               .ext_factor = 1.0f,
               .beta_fast = 32.0f,
               .beta_slow = 1.0f,
               .n_ctx_orig = 4096};
    ref::Rope(a);
    a.x = y.data();
    Rope(a);
    const int order[4] = {0, 1, 2, 3};
    const int neox_order[4] = {0, 2, 1, 3};  // pair i is (i, i + 2)
    for (int k = 0; k < 4; ++k) {
      const int idx = mode == RopeMode::kNorm ? order[k] : neox_order[k];
      EXPECT_NEAR(x[idx], want_norm[k], 2e-6) << "k=" << k;
      EXPECT_EQ(y[idx], x[idx]);
    }
  }
}

// ---- GLU, Add, Scale ---------------------------------------------------------------------

TEST(Glu, MatchesReferenceAndFormula) {
  std::mt19937 rng(41);
  for (GluAct act : {GluAct::kGeluTanh, GluAct::kSilu}) {
    for (int64_t n : {1, 7, 255, 4097}) {
      SCOPED_TRACE((act == GluAct::kSilu ? "silu n=" : "gelu n=") + std::to_string(n));
      std::vector<float> gate = RandomVector(rng, n, -8.0f, 8.0f);
      std::vector<float> up = RandomVector(rng, n, -2.0f, 2.0f);
      const float extremes[] = {0.0f, -0.0f, 1e-20f, -1e-8f, 30.0f, -30.0f, 100.0f, -100.0f, -5.0f};
      for (size_t i = 0; i < std::size(extremes) && i < gate.size(); ++i) gate[i] = extremes[i];
      std::vector<float> want(n);
      ref::Glu(act, gate.data(), up.data(), n, want.data());
      for (int64_t i = 0; i < n; ++i) {  // formula in double
        const double u = gate[i];
        const double a =
            act == GluAct::kSilu
                ? u / (1.0 + std::exp(-u))
                : 0.5 * u * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)));
        const double e = a * up[i];
        // tanhf near -1 leaves 1 + tanh with an absolute error of ~6e-8.
        ASSERT_NEAR(want[i], e, 1e-6 * std::fabs(e) + 1e-7 * std::fabs(u * up[i])) << gate[i];
      }
      for (Isa isa : Isas()) {
        std::vector<float> got(n);
        Glu(act, gate.data(), up.data(), n, got.data(), isa);
        std::vector<float> in_place = gate;
        Glu(act, in_place.data(), up.data(), n, in_place.data(), isa);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_NEAR(got[i], want[i],
                      2e-6f * std::fabs(want[i]) + 1e-7f * std::fabs(gate[i] * up[i]))
              << IsaName(isa) << " gate=" << gate[i];
          ASSERT_EQ(in_place[i], got[i]) << IsaName(isa);
        }
      }
    }
  }
}

TEST(AddScale, ExactElementwise) {
  std::mt19937 rng(51);
  for (int64_t n : {1, 7, 255, 4097}) {
    std::vector<float> a = RandomVector(rng, n), b = RandomVector(rng, n);
    for (Isa isa : Isas()) {
      std::vector<float> out(n), in_place = a;
      Add(a.data(), b.data(), n, out.data(), isa);
      Add(in_place.data(), b.data(), n, in_place.data(), isa);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i], a[i] + b[i]) << IsaName(isa);
        ASSERT_EQ(in_place[i], out[i]);
      }
    }
    std::vector<float> s = a, r = a;
    Scale(s.data(), n, 0.37f);
    ref::Scale(r.data(), n, 0.37f);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(s[i], a[i] * 0.37f);
      ASSERT_EQ(r[i], s[i]);
    }
  }
}

// ---- GetRows -----------------------------------------------------------------------------

TEST(GetRows, DequantizesSelectedRows) {
  std::mt19937 rng(61);
  const int64_t n_rows = 9;
  const std::vector<int32_t> ids = {3, 0, 8, 3, 5, 1, 7};
  const DType types[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                         DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                         DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  for (DType type : types) {
    for (int64_t n_cols : {1, 7, 255, 4097, 32, 224, 256, 512}) {
      const int64_t bsz = Traits(type).block_size;
      if (n_cols % bsz != 0) continue;
      SCOPED_TRACE(std::string(DTypeName(type)) + " n_cols=" + std::to_string(n_cols));
      const int64_t row_bytes = RowBytes(type, n_cols).value();
      std::vector<float> src = RandomVector(rng, n_rows * n_cols, -4.0f, 4.0f);
      std::vector<uint8_t> w(n_rows * row_bytes);
      for (int64_t r = 0; r < n_rows; ++r) {
        ASSERT_TRUE(QuantizeRow(type, &src[r * n_cols], &w[r * row_bytes], n_cols));
      }
      const int64_t out_stride = n_cols + 1;
      std::vector<float> got(ids.size() * out_stride), want(ids.size() * out_stride);
      GetRows(type, w.data(), n_cols, ids.data(), ids.size(), got.data(), out_stride);
      ref::GetRows(type, w.data(), n_cols, ids.data(), ids.size(), want.data(), out_stride);
      std::vector<float> row(n_cols);
      for (size_t i = 0; i < ids.size(); ++i) {
        DequantizeRow(type, &w[ids[i] * row_bytes], row.data(), n_cols);
        for (int64_t c = 0; c < n_cols; ++c) {
          ASSERT_EQ(got[i * out_stride + c], row[c]);
          ASSERT_EQ(want[i * out_stride + c], row[c]);
          const float x = src[ids[i] * n_cols + c];
          if (type == DType::kF32) {
            ASSERT_EQ(row[c], x);
          } else if (type == DType::kF16) {
            ASSERT_EQ(row[c], F16ToF32(F32ToF16(x)));
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace gannet::cpu
