// Q4_0 and Q5_0 repacked at load for the AVX-512 target (the 16-row layouts of
// kernels/cpu/repack.h): the layout itself and UnpackRow; the 16-row tile kernel against the
// file-layout AVX-512 kernel (memcmp) on raw blocks at the extremes (codes 0 and 15 / 31, every
// 5th bit set or none, -128 activations), every token count of a tile, partial groups and every
// row range, the widest row repacked; MatMul, a GLU pair and a mixed group (Q5_0 beside
// interleaved Q8_0, as Gemma 3's K and V) against the file layout (memcmp) and the scalar twin
// (its tolerance); and the backend copying them on AVX-512 only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "base/thread_pool.h"
#include "conformance_util.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/repack.h"
#include "repack_util.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

constexpr DType kTypes[] = {DType::kQ4_0, DType::kQ5_0};

using conformance::Pool;

bool HasAvx512() { return conformance::HasIsa(Isa::kAvx512); }

size_t RowBytesOf(DType t, int64_t cols) { return static_cast<size_t>(*RowBytes(t, cols)); }

std::vector<uint8_t> Repacked(DType t, const std::vector<uint8_t>& w, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out(RepackedBytes(t, rows, cols), 0xAB);
  RepackRows(Pool(3), t, w.data(), rows, cols, out.data());
  return out;
}

// Raw Q4_0 / Q5_0 rows. fill 0: every code at its maximum (15, or 31: every 5th bit set);
// 1: every code 0; 2: random bytes; scales random in [-2, 2] (fill 2) or 1.
std::vector<uint8_t> RawRows(DType t, int64_t rows, int64_t cols, int fill, std::mt19937& rng) {
  const size_t rb = RowBytesOf(t, cols);
  std::vector<uint8_t> w(rb * rows);
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  const int64_t nb = cols / 32;
  const size_t bb = rb / nb;
  for (int64_t i = 0; i < rows * nb; ++i) {
    uint8_t* b = w.data() + i * bb;
    const uint16_t d = fill == 2 ? F32ToF16(ud(rng)) : F32ToF16(1.0f);
    std::memcpy(b, &d, 2);
    for (size_t k = 2; k < bb; ++k)
      b[k] = fill == 0 ? 0xFF : fill == 1 ? 0 : static_cast<uint8_t>(rng());
  }
  return w;
}

// Q8_0 activations: fill 0 every code -128, 1 alternating -128 / 127, 2 random; scales 1 or
// random.
std::vector<BlockQ8_0> Activations(int64_t n_blocks, int fill, std::mt19937& rng) {
  std::vector<BlockQ8_0> x(n_blocks);
  std::uniform_int_distribution<int> code(-128, 127);
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  for (BlockQ8_0& b : x) {
    b.d = fill == 2 ? F32ToF16(ud(rng)) : F32ToF16(1.0f);
    for (int i = 0; i < 32; ++i)
      b.qs[i] = static_cast<int8_t>(fill == 0   ? -128
                                    : fill == 1 ? (i % 2 ? -128 : 127)
                                                : code(rng));
  }
  return x;
}

TEST(RepackRows16, LayoutAndUnpackRow) {
  std::mt19937 rng(3);
  for (DType t : kTypes) {
    const bool q5 = t == DType::kQ5_0;
    const int64_t rows = 19, nb = 3, cols = 32 * nb;
    const std::vector<uint8_t> w = RawRows(t, rows, cols, 2, rng);
    const std::vector<uint8_t> p = Repacked(t, w, rows, cols);
    const size_t rb = RowBytesOf(t, cols), code_bytes = q5 ? 320 : 256;
    ASSERT_EQ(p.size(), 32 * rb) << DTypeName(t);  // two groups of 16 rows
    for (int64_t r = 0; r < 32; ++r) {
      const uint8_t* group = p.data() + (r / 16) * 16 * rb;
      const int k = static_cast<int>(r % 16);
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* src = w.data() + r * rb + b * (rb / nb);  // d, (qh,) qs
        const uint8_t* block = group + b * code_bytes;
        uint16_t d, want_d = 0;
        std::memcpy(&d, group + nb * code_bytes + (b * 16 + k) * 2, 2);
        if (r < rows) std::memcpy(&want_d, src, 2);
        EXPECT_EQ(d, want_d) << DTypeName(t) << " row " << r << " block " << b;
        const uint8_t* qs = src + (q5 ? 6 : 2);
        for (int j = 0; j < 16; ++j) {
          const uint8_t got = block[((j / 4) * 16 + k) * 4 + j % 4];
          ASSERT_EQ(got, r < rows ? qs[j] : 0) << DTypeName(t) << " row " << r << " byte " << j;
        }
        if (!q5) continue;
        uint32_t qh = 0;
        if (r < rows) std::memcpy(&qh, src + 2, 4);
        for (int v = 0; v < 32; ++v) {  // value v: mask v / 4, bit 4k + v % 4
          uint64_t mask;
          std::memcpy(&mask, block + 256 + 8 * (v / 4), 8);
          ASSERT_EQ((mask >> (4 * k + v % 4)) & 1, (qh >> v) & 1) << "row " << r << " value " << v;
        }
      }
    }
    std::vector<uint8_t> row(rb);
    for (int64_t r = 0; r < rows; ++r) {
      UnpackRow(t, p.data(), r, cols, row.data());
      ASSERT_EQ(std::memcmp(row.data(), w.data() + r * rb, rb), 0) << DTypeName(t) << " " << r;
    }
  }
}

TEST(RepackRows16, OnAvx512OnlyAndUpToTheRowBlockWidth) {
  for (DType t : kTypes) {
    EXPECT_TRUE(CanRepack(t, Isa::kAvx512));
    EXPECT_FALSE(CanRepack(t, Isa::kAvx2));
    EXPECT_FALSE(CanRepack(t, Isa::kScalar));
    EXPECT_EQ(RepackGroupRows(t), 16);
    if (!HasAvx512()) continue;  // (the width comes from the AVX2 kernels)
    const int64_t widest = 32 * avx2::RowBlockMaxBlocks(t);
    ASSERT_GT(widest, 32 * 1024);
    EXPECT_TRUE(CanRepackMatrix(t, Isa::kAvx512, widest));
    EXPECT_FALSE(CanRepackMatrix(t, Isa::kAvx512, widest + 32));
    EXPECT_FALSE(CanRepackMatrix(t, Isa::kAvx512, 48));
  }
  for (DType t : {DType::kQ4_1, DType::kQ5_1}) EXPECT_FALSE(CanRepack(t, Isa::kAvx512));
}

// The 16-row tile kernel gives the file-layout AVX-512 kernel's bytes: 1 block and odd block
// counts, the widest row repacked (one token per pass of its own table), rows around the group
// of 16, every token count of a tile, with the table from the caller (as MatMul passes it) and
// without.
TEST(RepackRows16Tiles, BitsEqualFileLayout) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(11);
  struct Case {
    int64_t rows, n_in;
    bool all_ranges;
  };
  for (DType t : kTypes) {
    const MatMulTileFn file = avx512::MatMulTileKernel(t);
    const MatMulTileFn inter = avx512::MatMulTileKernelRows16(t);
    ASSERT_NE(inter, nullptr);
    const int64_t widest = 32 * avx2::RowBlockMaxBlocks(t);
    const Case cases[] = {{1, 32, true},        {15, 32, true},   {17, 96, true},
                          {16, 32 * 67, false}, {33, 640, false}, {3, widest, false}};
    for (const Case& c : cases) {
      const int64_t nb = c.n_in / 32;
      for (int fill = 0; fill < 3; ++fill) {
        const std::vector<uint8_t> w = RawRows(t, c.rows, c.n_in, fill, rng);
        const std::vector<uint8_t> p = Repacked(t, w, c.rows, c.n_in);
        const std::vector<BlockQ8_0> x = Activations(nb * kMatMulWideTileTokens, fill, rng);
        std::vector<uint8_t> tab(avx512::Q8_0ActTableBytes(c.n_in) * kMatMulWideTileTokens);
        for (int j = 0; j < kMatMulWideTileTokens; ++j) {
          avx512::FillQ8_0ActTable(reinterpret_cast<const uint8_t*>(x.data() + j * nb), c.n_in,
                                   tab.data() + j * avx512::Q8_0ActTableBytes(c.n_in));
        }
        const std::vector<std::pair<int64_t, int64_t>> ranges =
            repack_test::RowRanges(c.rows, c.all_ranges);
        for (int nt = 1; nt <= kMatMulWideTileTokens; ++nt) {
          if (c.n_in == widest && nt == 3) nt = kMatMulWideTileTokens;  // 1, 2 and 16 tokens
          for (const auto& [r0, r1] : ranges) {
            for (bool own_table : {false, true}) {
              MatMulTile tile;
              tile.w_row_bytes = RowBytesOf(t, c.n_in);
              tile.xq = reinterpret_cast<const uint8_t*>(x.data());
              tile.xq_stride = nb * sizeof(BlockQ8_0);
              tile.nt = nt;
              tile.n_in = c.n_in;
              tile.y_stride = c.rows;
              std::vector<float> ya(kMatMulWideTileTokens * c.rows, -7.0f), yb = ya;
              tile.w = w.data();
              tile.y = ya.data();
              file(tile, r0, r1);
              tile.w = p.data();
              tile.y = yb.data();
              if (!own_table) {
                tile.xtab = tab.data();
                tile.xtab_stride = avx512::Q8_0ActTableBytes(c.n_in);
              }
              inter(tile, r0, r1);
              ASSERT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
                  << DTypeName(t) << " n_in " << c.n_in << " fill " << fill << " nt " << nt
                  << " rows " << r0 << ".." << r1 << " of " << c.rows << " own " << own_table;
            }
          }
        }
      }
    }
  }
}

using repack_test::QuantizedWeights;
using repack_test::ScalarTwinOf;
using repack_test::Weights;

std::vector<float> RandomRows(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  return x;
}

// MatMul on interleaved Q4_0 / Q5_0: the file layout's bytes whatever the thread count and token
// count (decode, every tile size, 17 tokens: a tile and one), and within the row-block
// conformance tolerance of the scalar twin (VecDotRef on the reference rows): (2 nb + 4) u
// sum |w x|.
TEST(RepackRows16MatMul, BitsEqualFileLayoutAndMatchScalarTwin) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(21);
  const double u = std::ldexp(1.0, -24);
  for (DType t : kTypes) {
    for (int64_t n_out : {1, 17, 31, 259}) {
      for (int64_t n_in : {32, 640, 2048}) {
        if (n_out == 259 && n_in == 2048) continue;
        const Weights w = QuantizedWeights(t, n_out, n_in, rng, Pool(3));
        for (int64_t nt : {1, 2, 5, 9, 13, 16, 17}) {
          const std::vector<float> x = RandomRows(nt * n_in, rng);
          const repack_test::ScalarTwin twin = ScalarTwinOf(t, w.file, n_out, n_in, x, nt);
          const std::vector<float>& ref = twin.ref;
          const std::vector<float>& abs_ref = twin.abs_ref;
          for (int threads : {1, 3}) {
            std::vector<float> y[2];
            for (int inter = 0; inter < 2; ++inter) {
              y[inter].assign(nt * n_out, -1.0f);
              std::vector<uint8_t> scratch(MatMulScratchBytes(t, n_in, nt, inter) + 1);
              MatMul(Pool(threads),
                     MatMulArgs{.wtype = t,
                                .w = inter ? w.inter.data() : w.file.data(),
                                .n_out = n_out,
                                .n_in = n_in,
                                .w_interleaved = inter == 1,
                                .x = x.data(),
                                .x_stride = n_in,
                                .n_tokens = nt,
                                .y = y[inter].data(),
                                .y_stride = n_out,
                                .scratch = scratch.data()},
                     Isa::kAvx512);
            }
            ASSERT_EQ(std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)), 0)
                << DTypeName(t) << " threads " << threads << " shape " << n_out << "x" << n_in
                << "x" << nt;
            const double nb = static_cast<double>(n_in / 32);
            for (size_t i = 0; i < y[1].size(); ++i) {
              ASSERT_LE(std::fabs(double{y[1][i]} - ref[i]), (2 * nb + 4) * u * abs_ref[i] + 1e-37)
                  << DTypeName(t) << " shape " << n_out << "x" << n_in << "x" << nt << " index "
                  << i;
            }
          }
        }
      }
    }
  }
}

// A GLU pair (Q5_0 gate, Q4_0 up) and a fused group with a pre-norm (Q5_0, Q4_0 and an
// interleaved-or-not Q8_0 beside them, as Gemma 3's Q, K and V), each weight in either layout:
// the same bytes in every combination.
TEST(RepackRows16MatMul, GluPairAndMixedGroupBitsEqualFileLayout) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(31);
  const int64_t n_in = 640;
  const DType types[3] = {DType::kQ5_0, DType::kQ4_0, DType::kQ8_0};
  const int64_t n_outs[3] = {203, 64, 48};
  Weights ws[3];
  for (int i = 0; i < 3; ++i) ws[i] = QuantizedWeights(types[i], n_outs[i], n_in, rng, Pool(3));
  const Weights up = QuantizedWeights(DType::kQ4_0, n_outs[0], n_in, rng, Pool(3));
  std::vector<float> norm_w(n_in);
  for (float& v : norm_w) v = 1.0f + 0.01f * static_cast<float>(rng() % 100);
  for (bool glu : {true, false}) {
    const int n_outputs = glu ? 2 : 3;
    for (int64_t nt : {1, 5, 9, 16, 17}) {
      const std::vector<float> x = RandomRows(nt * n_in, rng);
      for (int threads : {1, 3}) {
        std::vector<std::vector<float>> base;
        for (int mode = 0; mode < (1 << n_outputs); ++mode) {
          std::vector<std::vector<float>> ys(n_outputs);
          MatMulOutput outs[3];
          for (int i = 0; i < n_outputs; ++i) {
            const bool inter = (mode >> i) & 1;
            const Weights& w = glu && i == 1 ? up : ws[i];
            const int64_t n_out = glu ? n_outs[0] : n_outs[i];
            ys[i].assign(nt * n_out, -1.0f);
            outs[i] = {.wtype = types[i],
                       .w = inter ? w.inter.data() : w.file.data(),
                       .n_out = n_out,
                       .w_interleaved = inter,
                       .y = ys[i].data(),
                       .y_stride = n_out};
          }
          MatMulGroupArgs a{.x = x.data(),
                            .x_stride = n_in,
                            .n_in = n_in,
                            .n_tokens = nt,
                            .outputs = outs,
                            .n_outputs = n_outputs,
                            .pre_norm = !glu,
                            .norm_weight = norm_w.data(),
                            .norm_eps = 1e-6f,
                            .glu = glu,
                            .act = GluAct::kSilu};
          std::vector<uint8_t> scratch(MatMulGroupScratchBytes(a) + 64);
          a.scratch = scratch.data();
          MatMulGroup(Pool(threads), a, Isa::kAvx512);
          if (mode == 0) {
            base = ys;
            continue;
          }
          for (int i = 0; i < (glu ? 1 : n_outputs); ++i) {
            ASSERT_EQ(std::memcmp(base[i].data(), ys[i].data(), ys[i].size() * sizeof(float)), 0)
                << "glu " << glu << " nt " << nt << " threads " << threads << " mode " << mode
                << " output " << i;
          }
        }
      }
    }
  }
}

// The backend copies Q4_0 / Q5_0 interleaved on AVX-512 (not on AVX2, not past the row-block
// width) and MatMul through it keeps the bits; raw rows and Embed read the file rows back.
TEST(RepackRows16Backend, CopiesOnAvx512OnlyAndKeepsTheBits) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(41);
  for (DType t : kTypes) {
    const int64_t rows = 37, n_in = 320;
    const Weights w = QuantizedWeights(t, rows, n_in, rng, Pool(3));
    const int64_t too_wide = 32 * (avx2::RowBlockMaxBlocks(t) + 1);
    const std::vector<uint8_t> wide(RowBytesOf(t, too_wide) * 2);
    const kernels::Weight weights[2] = {
        {.type = t, .data = w.file.data(), .rows = rows, .cols = n_in},
        {.type = t, .data = wide.data(), .rows = 2, .cols = too_wide}};
    const CpuBackendOptions interleaved_only{.copy_other_weights = false};
    CpuBackend avx2(Pool(3), Isa::kAvx2, interleaved_only), plain(Pool(3), Isa::kAvx512, false),
        packed(Pool(3), Isa::kAvx512, interleaved_only);
    EXPECT_EQ(avx2.PrepareMatMulWeights(weights, {}), std::vector<bool>(2, false));
    EXPECT_EQ(plain.PrepareMatMulWeights(weights, {}), std::vector<bool>(2, false));
    EXPECT_EQ(packed.PrepareMatMulWeights(weights, {}), (std::vector<bool>{true, false}));
    EXPECT_EQ(packed.prepared_weight_bytes(), RepackedBytes(t, rows, n_in));
    for (int64_t nt : {1, 6, 16}) {
      const std::vector<float> x = RandomRows(nt * n_in, rng);
      std::vector<float> y[2];
      CpuBackend* backends[2] = {&plain, &packed};
      for (int b = 0; b < 2; ++b) {
        y[b].assign(nt * rows, -1.0f);
        const kernels::MatMulOutput out{.w = weights[0], .y = y[b].data(), .y_stride = rows};
        kernels::MatMulArgs a{
            .x = x.data(), .x_stride = n_in, .n_in = n_in, .n_tokens = nt, .outputs = {&out, 1}};
        std::vector<uint8_t> scratch(backends[b]->MatMulScratchBytes(a) + 64);
        a.scratch = scratch.data();
        backends[b]->MatMul(a);
      }
      ASSERT_EQ(std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)), 0)
          << DTypeName(t) << " " << nt;
    }
    const int32_t rows_read[4] = {36, 0, 17, 16};
    const size_t rb = RowBytesOf(t, n_in);
    std::vector<uint8_t> raw(4 * rb);
    packed.ReadWeightRows(weights[0], rows_read, raw.data());
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(std::memcmp(raw.data() + j * rb, w.file.data() + rows_read[j] * rb, rb), 0)
          << DTypeName(t) << " " << rows_read[j];
    }
    const int32_t ids[3] = {0, 17, 36};
    std::vector<float> e_plain(3 * n_in), e_packed(3 * n_in);
    plain.Embed(weights[0], ids, 1.0f, e_plain.data());
    packed.Embed(weights[0], ids, 1.0f, e_packed.data());
    EXPECT_EQ(std::memcmp(e_plain.data(), e_packed.data(), e_plain.size() * sizeof(float)), 0);
  }
}

}  // namespace
}  // namespace gannet::cpu
