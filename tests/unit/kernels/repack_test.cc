// Weights repacked at load (kernels/cpu/repack.h): the interleaved layout itself, the interleaved
// tile kernels against the file-layout kernels (memcmp) on raw blocks at the int16 extremes and
// on every row range of awkward row counts, and MatMul / a GLU MatMulGroup on interleaved weights
// against the file layout (memcmp) and against the scalar twin (its tolerance), on every SIMD
// target and several thread counts.
#include "kernels/cpu/repack.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "repack_util.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

const DType kTypes[] = {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

bool HasIsa(Isa isa) {
  Isa isas[3];
  const int n = AvailableIsas(isas);
  for (int k = 0; k < n; ++k) {
    if (isas[k] == isa) return true;
  }
  return false;
}

std::vector<Isa> SimdIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (HasIsa(isa)) out.push_back(isa);
  }
  return out;
}

ThreadPool& Pool(int n_threads) {
  static ThreadPool* pools[4] = {};
  if (pools[n_threads] == nullptr) pools[n_threads] = new ThreadPool(n_threads);
  return *pools[n_threads];
}

size_t BlockBytes(DType t) { return static_cast<size_t>(*RowBytes(t, 256)); }

std::vector<uint8_t> Repacked(DType t, const std::vector<uint8_t>& w, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out(RepackedBytes(t, rows, cols), 0xAB);
  RepackRows(Pool(2), t, w.data(), rows, cols, out.data());
  return out;
}

// Random blocks with finite scales (the bytes of d / dmin overwritten with values in [-2, 2]),
// or every byte 0xFF (maximum codes and scales) with d = 1/64, dmin = 1/128.
std::vector<uint8_t> RawBlocks(DType t, int64_t rows, int64_t cols, bool max, std::mt19937& rng) {
  std::vector<uint8_t> w(static_cast<size_t>(*RowBytes(t, cols)) * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  for (auto& b : w) b = max ? 0xFF : static_cast<uint8_t>(byte(rng));
  const size_t bb = BlockBytes(t);
  for (size_t b = 0; b < w.size(); b += bb) {
    const uint16_t d = F32ToF16(max ? 1.0f / 64 : ud(rng));
    const uint16_t dmin = F32ToF16(max ? 1.0f / 128 : ud(rng));
    if (t == DType::kQ6_K) {
      std::memcpy(w.data() + b + offsetof(BlockQ6_K, d), &d, 2);
    } else {
      std::memcpy(w.data() + b, &d, 2);
      std::memcpy(w.data() + b + 2, &dmin, 2);
    }
  }
  return w;
}

// Q8_K activations at the extremes the int16 bounds are derived for, or random codes.
std::vector<BlockQ8_K> RawActivations(int64_t n_blocks, int fill, std::mt19937& rng) {
  std::vector<BlockQ8_K> x(n_blocks);
  std::uniform_int_distribution<int> code(-128, 127);
  for (BlockQ8_K& b : x) {
    b.d = fill == 2 ? 0.01f * static_cast<float>(code(rng) + 129) : 1.0f / 128;
    for (int i = 0; i < 256; ++i) {
      const int v = fill == 0 ? -128 : fill == 1 ? ((i / 2) % 2 ? -128 : 127) : code(rng);
      b.qs[i] = static_cast<int8_t>(v);
    }
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b.qs[16 * g + l];
      b.bsums[g] = static_cast<int16_t>(sum);
    }
  }
  return x;
}

TEST(Repack, LayoutInterleavesSuperBlocksAndZeroPadsTheLastGroup) {
  std::mt19937 rng(1);
  for (DType t : kTypes) {
    const int64_t rows = 7, cols = 3 * 256;
    const std::vector<uint8_t> w = RawBlocks(t, rows, cols, false, rng);
    const std::vector<uint8_t> p = Repacked(t, w, rows, cols);
    const size_t bb = BlockBytes(t), row_bytes = 3 * bb;
    ASSERT_EQ(p.size(), 8 * row_bytes) << DTypeName(t);  // two whole groups of 4
    for (int64_t r = 0; r < 8; ++r) {
      for (int64_t b = 0; b < 3; ++b) {
        const uint8_t* slot =
            p.data() + (r / kRepackRows) * kRepackRows * row_bytes + (b * 4 + r % 4) * bb;
        if (r < rows) {
          EXPECT_EQ(std::memcmp(slot, w.data() + r * row_bytes + b * bb, bb), 0)
              << DTypeName(t) << " row " << r << " block " << b;
        } else {
          EXPECT_EQ(std::vector<uint8_t>(slot, slot + bb), std::vector<uint8_t>(bb, 0));
        }
      }
    }
  }
}

TEST(Repack, OnlyKQuantsOnSimdTargets) {
  for (DType t : kTypes) {
    EXPECT_FALSE(CanRepack(t, Isa::kScalar));
    EXPECT_TRUE(CanRepack(t, Isa::kAvx2));
    EXPECT_TRUE(CanRepack(t, Isa::kAvx512));
  }
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kF16, DType::kF32})
    EXPECT_FALSE(CanRepack(t, Isa::kAvx2)) << DTypeName(t);
}

// The interleaved tile kernels give the file-layout kernels' bytes: raw blocks at the extremes
// (max codes and scales, -128 / alternating activations) and random, 1 and 33 super-blocks,
// every token count of a tile, row counts that leave partial groups, every row range [r0, r1).
TEST(RepackTiles, InterleavedBitsEqualFileLayout) {
  if (!HasIsa(Isa::kAvx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(7);
  for (Isa isa : SimdIsas()) {
    for (DType t : kTypes) {
      const MatMulTileFn file =
          isa == Isa::kAvx512 ? avx512::MatMulTileKernelK(t) : avx2::MatMulTileKernelK(t);
      const MatMulTileFn inter = isa == Isa::kAvx512 ? avx512::MatMulTileKernelKInterleaved(t)
                                                     : avx2::MatMulTileKernelKInterleaved(t);
      ASSERT_NE(inter, nullptr);
      const int max_tokens =
          isa == Isa::kAvx512 ? avx512::MatMulTileTokens(t) : avx2::MatMulTileTokens(t);
      for (int64_t n_in : {int64_t{256}, int64_t{256 * 33}}) {
        const int64_t nb = n_in / 256;
        for (int64_t rows : {1, 3, 6, 9}) {
          for (int fill = 0; fill < 3; ++fill) {
            const std::vector<uint8_t> w = RawBlocks(t, rows, n_in, fill == 0, rng);
            const std::vector<uint8_t> p = Repacked(t, w, rows, n_in);
            const std::vector<BlockQ8_K> x = RawActivations(nb * max_tokens, fill, rng);
            for (int nt = 1; nt <= max_tokens; ++nt) {
              for (int64_t r0 = 0; r0 < rows; ++r0) {
                for (int64_t r1 = r0 + 1; r1 <= rows; ++r1) {
                  MatMulTile tile;
                  tile.w_row_bytes = static_cast<size_t>(*RowBytes(t, n_in));
                  tile.xq = reinterpret_cast<const uint8_t*>(x.data());
                  tile.xq_stride = nb * sizeof(BlockQ8_K);
                  tile.nt = nt;
                  tile.n_in = n_in;
                  tile.y_stride = rows;
                  std::vector<float> ya(max_tokens * rows, -7.0f), yb = ya;
                  tile.w = w.data();
                  tile.y = ya.data();
                  file(tile, r0, r1);
                  tile.w = p.data();
                  tile.y = yb.data();
                  inter(tile, r0, r1);
                  ASSERT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
                      << IsaName(isa) << " " << DTypeName(t) << " n_in " << n_in << " fill " << fill
                      << " nt " << nt << " rows " << r0 << ".." << r1 << " of " << rows;
                }
              }
            }
          }
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

std::vector<float> RunMatMul(DType t, const void* w, bool interleaved, int64_t n_out, int64_t n_in,
                             const std::vector<float>& x, int64_t nt, ThreadPool& pool, Isa isa) {
  std::vector<float> y(nt * n_out, -1.0f);
  std::vector<uint8_t> scratch(MatMulScratchBytes(t, n_in, nt, interleaved) + 1);
  MatMul(pool,
         MatMulArgs{.wtype = t,
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
         isa);
  return y;
}

// MatMul on interleaved weights: the file layout's bytes, whatever the thread count (chunks of
// whole groups) and token count (decode, 4- and 8-token tiles, a 17-token batch), and within the
// conformance tolerance of the scalar twin (VecDotRef on the reference Q8_K rows).
TEST(RepackMatMul, BitsEqualFileLayoutAndMatchScalarTwin) {
  if (!HasIsa(Isa::kAvx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(21);
  for (DType t : kTypes) {
    for (int64_t n_out : {1, 2, 5, 7, 13, 259}) {
      const int64_t n_in = n_out == 259 ? 2304 : 512;
      const Weights w = QuantizedWeights(t, n_out, n_in, rng);
      for (int64_t nt : {1, 3, 8, 17}) {
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> x(nt * n_in);
        for (float& v : x) v = nd(rng);
        const repack_test::ScalarTwin twin = ScalarTwinOf(t, w.file, n_out, n_in, x, nt);
        const std::vector<float>& ref = twin.ref;
        const std::vector<float>& abs_ref = twin.abs_ref;
        for (Isa isa : SimdIsas()) {
          for (int threads : {1, 3}) {
            ThreadPool& pool = Pool(threads);
            const auto ya = RunMatMul(t, w.file.data(), false, n_out, n_in, x, nt, pool, isa);
            const auto yb = RunMatMul(t, w.inter.data(), true, n_out, n_in, x, nt, pool, isa);
            ASSERT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
                << DTypeName(t) << " " << IsaName(isa) << " threads " << threads << " shape "
                << n_out << "x" << n_in << "x" << nt;
            for (size_t i = 0; i < yb.size(); ++i) {
              ASSERT_LE(std::fabs(double{yb[i]} - ref[i]), 2e-6 * abs_ref[i] + 1e-30)
                  << DTypeName(t) << " " << IsaName(isa) << " index " << i;
            }
          }
        }
      }
    }
  }
}

// A GLU pair (gate interleaved, up in the file layout, and both interleaved) addresses each
// chunk's weights from its first row: the bytes of the file-layout pair.
TEST(RepackMatMul, GluPairBitsEqualFileLayout) {
  if (!HasIsa(Isa::kAvx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(31);
  const int64_t n_out = 203, n_in = 768;
  for (DType t : {DType::kQ4_K, DType::kQ6_K}) {
    const Weights gate = QuantizedWeights(t, n_out, n_in, rng);
    const Weights up = QuantizedWeights(DType::kQ4_K, n_out, n_in, rng);
    for (int64_t nt : {1, 5, 9}) {
      std::normal_distribution<float> nd(0.0f, 1.0f);
      std::vector<float> x(nt * n_in);
      for (float& v : x) v = nd(rng);
      for (Isa isa : SimdIsas()) {
        std::vector<float> ys[3];
        for (int mode = 0; mode < 3; ++mode) {
          const bool gi = mode >= 1, ui = mode == 2;
          const MatMulOutput outs[2] = {{.wtype = t,
                                         .w = gi ? gate.inter.data() : gate.file.data(),
                                         .n_out = n_out,
                                         .w_interleaved = gi,
                                         .y = nullptr,
                                         .y_stride = n_out},
                                        {.wtype = DType::kQ4_K,
                                         .w = ui ? up.inter.data() : up.file.data(),
                                         .n_out = n_out,
                                         .w_interleaved = ui}};
          ys[mode].assign(nt * n_out, -1.0f);
          MatMulGroupArgs a{.x = x.data(),
                            .x_stride = n_in,
                            .n_in = n_in,
                            .n_tokens = nt,
                            .outputs = outs,
                            .n_outputs = 2,
                            .glu = true,
                            .act = GluAct::kSilu};
          MatMulOutput with_y[2] = {outs[0], outs[1]};
          with_y[0].y = ys[mode].data();
          a.outputs = with_y;
          std::vector<uint8_t> scratch(MatMulGroupScratchBytes(a) + 64);
          a.scratch = scratch.data();
          MatMulGroup(Pool(3), a, isa);
        }
        for (int mode = 1; mode < 3; ++mode) {
          ASSERT_EQ(std::memcmp(ys[0].data(), ys[mode].data(), ys[0].size() * sizeof(float)), 0)
              << DTypeName(t) << " " << IsaName(isa) << " nt " << nt << " mode " << mode;
        }
      }
    }
  }
}

// CpuBackend::PrepareMatMulWeights without copies of the other matrices (weight_copy_test.cc):
// the K-quant matrices are copied (Q8_0 on AVX-512 only, nothing on the scalar target or with
// repacking off), every byte of a copied original is
// released exactly once, in order, and MatMul through the backend gives the bits of a backend
// without copies.
TEST(RepackBackend, CopiesKQuantsReleasesTheOriginalsAndKeepsTheBits) {
  if (!HasIsa(Isa::kAvx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(41);
  const int64_t n_in = 512;
  // 21003 Q6_K rows of 420 bytes (8.8 MB): two release slices of at most 8 MiB, and a last
  // group of 3 rows.
  const int64_t rows[3] = {21003, 37, 7};
  const DType types[3] = {DType::kQ6_K, DType::kQ4_K, DType::kQ8_0};
  std::vector<uint8_t> w[3];
  std::vector<kernels::Weight> weights;
  for (int i = 0; i < 3; ++i) {
    w[i] = i == 2 ? std::vector<uint8_t>(static_cast<size_t>(*RowBytes(types[i], n_in)) * rows[i])
                  : QuantizedWeights(types[i], rows[i], n_in, rng).file;
    if (i == 2) {  // valid Q8_0 blocks: scale 1/64, codes as they come
      std::normal_distribution<float> nd(0.0f, 0.05f);
      std::vector<float> row(n_in);
      for (int64_t r = 0; r < rows[i]; ++r) {
        for (float& v : row) v = nd(rng);
        ASSERT_TRUE(
            QuantizeRow(types[i], row.data(), w[i].data() + r * (w[i].size() / rows[i]), n_in));
      }
    }
    weights.push_back({.type = types[i], .data = w[i].data(), .rows = rows[i], .cols = n_in});
  }
  for (Isa isa : SimdIsas()) {
    CpuBackend plain(Pool(2), isa, /*repack_weights=*/false);
    CpuBackend packed(Pool(2), isa, CpuBackendOptions{.copy_other_weights = false});
    std::vector<std::span<const uint8_t>> released;
    const auto release = [&](std::span<const uint8_t> part) { released.push_back(part); };
    EXPECT_EQ(plain.PrepareMatMulWeights(weights, release), std::vector<bool>(3, false));
    EXPECT_TRUE(released.empty());
    const bool q8 = isa == Isa::kAvx512;
    EXPECT_EQ(packed.PrepareMatMulWeights(weights, release), (std::vector<bool>{true, true, q8}));
    EXPECT_EQ(packed.prepared_weight_bytes(),
              RepackedBytes(types[0], rows[0], n_in) + RepackedBytes(types[1], rows[1], n_in) +
                  (q8 ? RepackedBytes(types[2], rows[2], n_in) : 0));
    // The originals' bytes, in order, each once: the Q6_K matrix in two or more slices.
    size_t i = 0;
    for (int k = 0; k < (q8 ? 3 : 2); ++k) {
      const uint8_t* at = w[k].data();
      while (i < released.size() && released[i].data() >= w[k].data() &&
             released[i].data() < w[k].data() + w[k].size()) {
        EXPECT_EQ(released[i].data(), at);
        at += released[i].size();
        ++i;
      }
      EXPECT_EQ(at, w[k].data() + w[k].size()) << DTypeName(types[k]);
    }
    EXPECT_EQ(i, released.size());
    EXPECT_GT(released.size(), 2u);
    for (int64_t nt : {1, 6}) {
      std::normal_distribution<float> nd(0.0f, 1.0f);
      std::vector<float> x(nt * n_in);
      for (float& v : x) v = nd(rng);
      for (int k = 0; k < 3; ++k) {
        std::vector<float> y[2];
        CpuBackend* backends[2] = {&plain, &packed};
        for (int b = 0; b < 2; ++b) {
          y[b].assign(nt * rows[k], -1.0f);
          const kernels::MatMulOutput out{.w = weights[k], .y = y[b].data(), .y_stride = rows[k]};
          kernels::MatMulArgs a{
              .x = x.data(), .x_stride = n_in, .n_in = n_in, .n_tokens = nt, .outputs = {&out, 1}};
          std::vector<uint8_t> scratch(backends[b]->MatMulScratchBytes(a) + 64);
          a.scratch = scratch.data();
          backends[b]->MatMul(a);
        }
        ASSERT_EQ(std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)), 0)
            << IsaName(isa) << " " << DTypeName(types[k]) << " nt " << nt;
      }
    }
  }
  CpuBackend scalar(Pool(1), Isa::kScalar, CpuBackendOptions{.copy_other_weights = false});
  EXPECT_EQ(scalar.PrepareMatMulWeights(weights, {}), std::vector<bool>(3, false));
}

}  // namespace
}  // namespace gannet::cpu
