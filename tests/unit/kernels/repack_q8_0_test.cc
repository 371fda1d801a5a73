// Q8_0 repacked at load for the AVX-512 target (the Q8_0 layout of kernels/cpu/repack.h): the
// layout itself, the interleaved tile kernel against the file-layout AVX-512 kernel (memcmp) on
// raw blocks with -128 codes and activations, every token count of a tile, partial groups and
// every row range, widths that take several table passes; MatMul and a GLU pair on interleaved
// weights against the file layout (memcmp) and the scalar twin (its tolerance); and the backend
// copying Q8_0 on AVX-512 only, its embedding lookups reading the copy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/repack.h"
#include "repack_util.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

constexpr uint16_t kOne = 0x3C00;  // f16 1.0

bool HasAvx512() {
  Isa isas[3];
  const int n = AvailableIsas(isas);
  for (int k = 0; k < n; ++k) {
    if (isas[k] == Isa::kAvx512) return true;
  }
  return false;
}

ThreadPool& Pool(int n_threads) {
  static ThreadPool* pools[4] = {};
  if (pools[n_threads] == nullptr) pools[n_threads] = new ThreadPool(n_threads);
  return *pools[n_threads];
}

size_t RowBytesQ8(int64_t cols) { return static_cast<size_t>(*RowBytes(DType::kQ8_0, cols)); }

std::vector<uint8_t> Repacked(const std::vector<uint8_t>& w, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out(RepackedBytes(DType::kQ8_0, rows, cols), 0xAB);
  RepackRows(Pool(2), DType::kQ8_0, w.data(), rows, cols, out.data());
  return out;
}

// Raw Q8_0 blocks. fill 0: every code -128; 1: alternating -128 / 127; 2: random codes; all with
// random f16 scales in [-2, 2] (fill 2) or 1.
std::vector<BlockQ8_0> RawBlocks(int64_t n_blocks, int fill, std::mt19937& rng) {
  std::vector<BlockQ8_0> x(n_blocks);
  std::uniform_int_distribution<int> code(-128, 127);
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  for (BlockQ8_0& b : x) {
    b.d = fill == 2 ? F32ToF16(ud(rng)) : kOne;
    for (int i = 0; i < 32; ++i) {
      const int v = fill == 0 ? -128 : fill == 1 ? (i % 2 ? -128 : 127) : code(rng);
      b.qs[i] = static_cast<int8_t>(v);
    }
  }
  return x;
}

std::vector<uint8_t> Bytes(const std::vector<BlockQ8_0>& b) {
  std::vector<uint8_t> out(b.size() * sizeof(BlockQ8_0));
  std::memcpy(out.data(), b.data(), out.size());
  return out;
}

TEST(RepackQ8_0, LayoutSplitsBlocksIntoFourCodeLanesPerRow) {
  std::mt19937 rng(3);
  const int64_t rows = 19, nb = 3, cols = 32 * nb;
  const std::vector<uint8_t> w = Bytes(RawBlocks(rows * nb, 2, rng));
  const std::vector<uint8_t> p = Repacked(w, rows, cols);
  const size_t row_bytes = RowBytesQ8(cols);
  ASSERT_EQ(p.size(), 32 * row_bytes);  // two groups of 16 rows
  for (int64_t r = 0; r < 32; ++r) {
    const uint8_t* group = p.data() + (r / 16) * 16 * row_bytes;
    const int k = static_cast<int>(r % 16);
    for (int64_t b = 0; b < nb; ++b) {
      const auto* src = reinterpret_cast<const BlockQ8_0*>(w.data() + r * row_bytes) + b;
      uint16_t d;
      std::memcpy(&d, group + nb * 512 + (b * 16 + k) * 2, 2);
      EXPECT_EQ(d, r < rows ? src->d : 0) << "row " << r << " block " << b;
      for (int i = 0; i < 32; ++i) {
        const uint8_t got = group[b * 512 + ((i / 4) * 16 + k) * 4 + i % 4];
        const uint8_t want = r < rows ? static_cast<uint8_t>(src->qs[i]) ^ 0x80 : 0x80;
        ASSERT_EQ(got, want) << "row " << r << " block " << b << " code " << i;
      }
    }
  }
}

// UnpackRow gives back every row's file bytes, from the Q8_0 layout and the K-quants' (the
// embedding lookup of a tied table reads its rows from the copy).
TEST(RepackQ8_0, UnpackRowGivesTheFileRowBack) {
  std::mt19937 rng(5);
  for (DType t : {DType::kQ8_0, DType::kQ4_K, DType::kQ6_K}) {
    const int64_t rows = 21, cols = 512;
    const size_t rb = static_cast<size_t>(*RowBytes(t, cols));
    std::vector<uint8_t> w(rb * rows);
    for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
    std::vector<uint8_t> p(RepackedBytes(t, rows, cols));
    RepackRows(Pool(2), t, w.data(), rows, cols, p.data());
    std::vector<uint8_t> row(rb);
    for (int64_t r = 0; r < rows; ++r) {
      UnpackRow(t, p.data(), r, cols, row.data());
      ASSERT_EQ(std::memcmp(row.data(), w.data() + r * rb, rb), 0) << DTypeName(t) << " " << r;
    }
  }
}

TEST(RepackQ8_0, OnlyOnAvx512AndUpToTheWidestTable) {
  EXPECT_TRUE(CanRepack(DType::kQ8_0, Isa::kAvx512));
  EXPECT_FALSE(CanRepack(DType::kQ8_0, Isa::kAvx2));
  EXPECT_FALSE(CanRepack(DType::kQ8_0, Isa::kScalar));
  EXPECT_EQ(RepackGroupRows(DType::kQ8_0), 16);
  EXPECT_EQ(RepackGroupRows(DType::kQ4_K), kRepackRows);
  EXPECT_TRUE(CanRepackMatrix(DType::kQ8_0, Isa::kAvx512, 32));
  EXPECT_TRUE(CanRepackMatrix(DType::kQ8_0, Isa::kAvx512, kMaxRepackColsQ8_0));
  EXPECT_FALSE(CanRepackMatrix(DType::kQ8_0, Isa::kAvx512, kMaxRepackColsQ8_0 + 32));
  EXPECT_FALSE(CanRepackMatrix(DType::kQ8_0, Isa::kAvx512, 48));
  EXPECT_FALSE(CanRepackMatrix(DType::kQ8_0, Isa::kAvx2, 64));
  EXPECT_TRUE(CanRepackMatrix(DType::kQ4_K, Isa::kAvx2, 256 * 1024));
}

struct TileCase {
  int64_t rows, n_in;
  bool all_ranges;  // every [r0, r1), else [0, rows) and a few inner ranges
};

// The interleaved tile kernel gives the file-layout AVX-512 kernel's bytes (both exact for -128
// codes and activations): 1 block and odd block counts, a width whose table takes several passes
// of a 16-token tile (1000 blocks: passes of 5 tokens) and the widest repacked row (one token per
// pass), rows around the group of 16, every token count of a tile.
TEST(RepackQ8_0Tiles, InterleavedBitsEqualFileLayout) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(11);
  const MatMulTileFn file = avx512::MatMulTileKernel(DType::kQ8_0);
  const MatMulTileFn inter = avx512::MatMulTileKernelRows16(DType::kQ8_0);
  ASSERT_NE(inter, nullptr);
  const TileCase cases[] = {{1, 32, true},
                            {15, 32, true},
                            {17, 96, true},
                            {16, 32 * 67, false},
                            {33, 640, false},
                            {18, 32 * 1000, false},
                            {3, kMaxRepackColsQ8_0, false}};
  for (const TileCase& c : cases) {
    const int64_t nb = c.n_in / 32;
    for (int fill = 0; fill < 3; ++fill) {
      const std::vector<uint8_t> w = Bytes(RawBlocks(c.rows * nb, fill, rng));
      const std::vector<uint8_t> p = Repacked(w, c.rows, c.n_in);
      const int max_tokens = c.n_in >= 32 * 1000 ? 3 : kMatMulWideTileTokens;
      // Activations: the other fills' patterns, so -128 meets 127 and -128.
      std::vector<BlockQ8_0> x = RawBlocks(nb * kMatMulWideTileTokens, (fill + 1) % 3, rng);
      // Past 1820 blocks the file-layout AVX-512 kernel runs the AVX2 one, whose sign trick
      // needs activations >= -127 (all the quantizers make).
      if (nb > 1820) {
        for (BlockQ8_0& b : x) {
          for (int8_t& q : b.qs) q = std::max<int8_t>(q, -127);
        }
      }
      const std::vector<std::pair<int64_t, int64_t>> ranges =
          repack_test::RowRanges(c.rows, c.all_ranges);
      for (int nt = 1; nt <= max_tokens; ++nt) {
        if (c.n_in >= 32 * 1000 && nt == 3) nt = kMatMulWideTileTokens;  // 1, 2 and 16 tokens
        for (const auto& [r0, r1] : ranges) {
          MatMulTile tile;
          tile.w_row_bytes = RowBytesQ8(c.n_in);
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
          inter(tile, r0, r1);
          ASSERT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
              << "n_in " << c.n_in << " fill " << fill << " nt " << nt << " rows " << r0 << ".."
              << r1 << " of " << c.rows;
        }
      }
    }
  }
}

using repack_test::ScalarTwinOf;
using repack_test::Weights;

Weights QuantizedWeights(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  return repack_test::QuantizedWeights(t, rows, cols, rng, Pool(2));
}

std::vector<float> RunMatMul(const void* w, bool interleaved, int64_t n_out, int64_t n_in,
                             const std::vector<float>& x, int64_t nt, ThreadPool& pool) {
  std::vector<float> y(nt * n_out, -1.0f);
  std::vector<uint8_t> scratch(MatMulScratchBytes(DType::kQ8_0, n_in, nt, interleaved) + 1);
  MatMul(pool,
         MatMulArgs{.wtype = DType::kQ8_0,
                    .w = w,
                    .n_out = n_out,
                    .n_in = n_in,
                    .w_interleaved = interleaved,
                    .x = x.data(),
                    .x_stride = n_in,
                    .n_tokens = nt,
                    .y = y.data(),
                    .y_stride = n_out,
                    .scratch = scratch.data()},
         Isa::kAvx512);
  return y;
}

// MatMul on interleaved Q8_0: the file layout's bytes whatever the thread count (chunks of whole
// groups) and token count (decode, every tile size, 17 tokens: a tile and one), and within the
// row-block conformance tolerance of the scalar twin (VecDotRef on the reference Q8_0 rows):
// (2 nb + 4) u sum |w x|.
TEST(RepackQ8_0MatMul, BitsEqualFileLayoutAndMatchScalarTwin) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(21);
  const double u = std::ldexp(1.0, -24);
  for (int64_t n_out : {1, 7, 16, 17, 31, 259}) {
    for (int64_t n_in : {32, 640, 2048}) {
      if (n_out == 259 && n_in == 2048) continue;
      const Weights w = QuantizedWeights(DType::kQ8_0, n_out, n_in, rng);
      for (int64_t nt : {1, 2, 5, 8, 13, 16, 17}) {
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> x(nt * n_in);
        for (float& v : x) v = nd(rng);
        const repack_test::ScalarTwin twin = ScalarTwinOf(DType::kQ8_0, w.file, n_out, n_in, x, nt);
        const std::vector<float>& ref = twin.ref;
        const std::vector<float>& abs_ref = twin.abs_ref;
        for (int threads : {1, 3}) {
          const auto ya = RunMatMul(w.file.data(), false, n_out, n_in, x, nt, Pool(threads));
          const auto yb = RunMatMul(w.inter.data(), true, n_out, n_in, x, nt, Pool(threads));
          ASSERT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
              << "threads " << threads << " shape " << n_out << "x" << n_in << "x" << nt;
          const double nb = static_cast<double>(n_in / 32);
          for (size_t i = 0; i < yb.size(); ++i) {
            ASSERT_LE(std::fabs(double{yb[i]} - ref[i]), (2 * nb + 4) * u * abs_ref[i] + 1e-37)
                << "shape " << n_out << "x" << n_in << "x" << nt << " index " << i;
          }
        }
      }
    }
  }
}

// A restricted output head (the file rows of some tokens gathered into a copy, as
// engine::ModelRunner::LoadRestricted does) repacked on its own: each row has the bits of the same
// row of the whole repacked matrix, wherever it sits in its group of 16.
TEST(RepackQ8_0MatMul, GatheredRowsKeepTheWholeMatrixBits) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(23);
  const int64_t n_out = 300, n_in = 640;
  const Weights full = QuantizedWeights(DType::kQ8_0, n_out, n_in, rng);
  const int32_t ids[] = {299, 0, 17, 16, 150, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 200, 42};
  const int64_t n_ids = std::size(ids);
  const size_t rb = RowBytesQ8(n_in);
  std::vector<uint8_t> head(rb * n_ids);
  for (int64_t j = 0; j < n_ids; ++j) {
    std::memcpy(head.data() + j * rb, full.file.data() + static_cast<size_t>(ids[j]) * rb, rb);
  }
  std::vector<uint8_t> head_inter(RepackedBytes(DType::kQ8_0, n_ids, n_in));
  RepackRows(Pool(2), DType::kQ8_0, head.data(), n_ids, n_in, head_inter.data());
  for (int64_t nt : {1, 7, 16}) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(nt * n_in);
    for (float& v : x) v = nd(rng);
    const auto y_full = RunMatMul(full.inter.data(), true, n_out, n_in, x, nt, Pool(3));
    const auto y_head = RunMatMul(head_inter.data(), true, n_ids, n_in, x, nt, Pool(3));
    for (int64_t t = 0; t < nt; ++t) {
      for (int64_t j = 0; j < n_ids; ++j) {
        const float a = y_full[t * n_out + ids[j]], b = y_head[t * n_ids + j];
        ASSERT_EQ(std::memcmp(&a, &b, sizeof a), 0) << "token " << t << " row " << ids[j];
      }
    }
  }
}

// A GLU pair with a Q8_0 gate (groups of 16) and a Q4_K up projection (groups of 4), each in
// either layout: chunks start at a multiple of both groups, and the bytes are the file layout's.
TEST(RepackQ8_0MatMul, GluPairWithKQuantBitsEqualFileLayout) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(31);
  const int64_t n_out = 203, n_in = 768;
  const Weights gate = QuantizedWeights(DType::kQ8_0, n_out, n_in, rng);
  const Weights up = QuantizedWeights(DType::kQ4_K, n_out, n_in, rng);
  for (int64_t nt : {1, 5, 9, 16, 17}) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(nt * n_in);
    for (float& v : x) v = nd(rng);
    for (int threads : {1, 3}) {
      std::vector<float> ys[4];
      for (int mode = 0; mode < 4; ++mode) {
        const bool gi = mode & 1, ui = mode & 2;
        ys[mode].assign(nt * n_out, -1.0f);
        const MatMulOutput outs[2] = {{.wtype = DType::kQ8_0,
                                       .w = gi ? gate.inter.data() : gate.file.data(),
                                       .n_out = n_out,
                                       .w_interleaved = gi,
                                       .y = ys[mode].data(),
                                       .y_stride = n_out},
                                      {.wtype = DType::kQ4_K,
                                       .w = ui ? up.inter.data() : up.file.data(),
                                       .n_out = n_out,
                                       .w_interleaved = ui}};
        MatMulGroupArgs a{.x = x.data(),
                          .x_stride = n_in,
                          .n_in = n_in,
                          .n_tokens = nt,
                          .outputs = outs,
                          .n_outputs = 2,
                          .glu = true,
                          .act = GluAct::kSilu};
        std::vector<uint8_t> scratch(MatMulGroupScratchBytes(a) + 64);
        a.scratch = scratch.data();
        MatMulGroup(Pool(threads), a, Isa::kAvx512);
      }
      for (int mode = 1; mode < 4; ++mode) {
        ASSERT_EQ(std::memcmp(ys[0].data(), ys[mode].data(), ys[0].size() * sizeof(float)), 0)
            << "nt " << nt << " threads " << threads << " mode " << mode;
      }
    }
  }
}

// The backend copies Q8_0 on AVX-512 (not on AVX2, not a row wider than the table allows),
// releases the original, and MatMul through it keeps the bits; Embed reads the original rows.
TEST(RepackQ8_0Backend, CopiesOnAvx512OnlyAndKeepsTheBits) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(41);
  const int64_t rows = 37, n_in = 320;
  const Weights w = QuantizedWeights(DType::kQ8_0, rows, n_in, rng);
  const std::vector<uint8_t> wide(RowBytesQ8(kMaxRepackColsQ8_0 + 32) * 2);
  const kernels::Weight weights[2] = {
      {.type = DType::kQ8_0, .data = w.file.data(), .rows = rows, .cols = n_in},
      {.type = DType::kQ8_0, .data = wide.data(), .rows = 2, .cols = kMaxRepackColsQ8_0 + 32}};
  std::vector<std::span<const uint8_t>> released;
  const auto release = [&](std::span<const uint8_t> part) { released.push_back(part); };
  // Interleaved copies only (the plain copies of the rest: weight_copy_test.cc).
  const CpuBackendOptions interleaved_only{.copy_other_weights = false};
  CpuBackend avx2(Pool(2), Isa::kAvx2, interleaved_only), plain(Pool(2), Isa::kAvx512, false),
      packed(Pool(2), Isa::kAvx512, interleaved_only);
  EXPECT_EQ(avx2.PrepareMatMulWeights(weights, release), std::vector<bool>(2, false));
  EXPECT_EQ(plain.PrepareMatMulWeights(weights, release), std::vector<bool>(2, false));
  EXPECT_TRUE(released.empty());
  EXPECT_EQ(packed.PrepareMatMulWeights(weights, release), (std::vector<bool>{true, false}));
  EXPECT_EQ(packed.prepared_weight_bytes(), RepackedBytes(DType::kQ8_0, rows, n_in));
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].data(), w.file.data());
  EXPECT_EQ(released[0].size(), w.file.size());
  for (int64_t nt : {1, 6, 16}) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(nt * n_in);
    for (float& v : x) v = nd(rng);
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
    ASSERT_EQ(std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)), 0) << nt;
  }
  // Raw rows (a restricted head's gather) and the embedding lookup of a repacked (tied) matrix:
  // the file rows' bytes and values, read from the copy.
  const int32_t rows_read[4] = {36, 0, 17, 16};
  std::vector<uint8_t> raw(4 * RowBytesQ8(n_in));
  packed.ReadWeightRows(weights[0], rows_read, raw.data());
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(std::memcmp(raw.data() + j * RowBytesQ8(n_in),
                          w.file.data() + rows_read[j] * RowBytesQ8(n_in), RowBytesQ8(n_in)),
              0)
        << rows_read[j];
  }
  const int32_t ids[3] = {0, 17, 36};
  std::vector<float> e_plain(3 * n_in), e_packed(3 * n_in);
  plain.Embed(weights[0], ids, 1.0f, e_plain.data());
  packed.Embed(weights[0], ids, 1.0f, e_packed.data());
  EXPECT_EQ(std::memcmp(e_plain.data(), e_packed.data(), e_plain.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace gannet::cpu
