// The K-quant tile kernels at the extremes their SIMD int16 bounds are derived for, called directly
// (MatMul's quantizer never emits the activations that reach them), on every ISA against the
// scalar twin, and AVX-512 against AVX2 bit for bit; MatMul's K-quant chunking on every row count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "matmul_problem.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

using matmul_testing::HasIsa;
using matmul_testing::MakeProblem;
using matmul_testing::Pool;
using matmul_testing::Problem;
using matmul_testing::RandomValues;
using matmul_testing::RunMatMul;
using matmul_testing::Shape;
using matmul_testing::ShapesFor;

// A tile over file-layout K-quant rows `w` and Q8_K activations `x` (nt tokens of n_in values),
// its output rows y_stride apart (the caller sets y).
MatMulTile KTile(const std::vector<uint8_t>& w, size_t w_row_bytes, const std::vector<BlockQ8_K>& x,
                 int nt, int64_t n_in, int64_t y_stride) {
  MatMulTile tile;
  tile.w = w.data();
  tile.w_row_bytes = w_row_bytes;
  tile.xq = reinterpret_cast<const uint8_t*>(x.data());
  tile.xq_stride = static_cast<size_t>(n_in / 256) * sizeof(BlockQ8_K);
  tile.nt = nt;
  tile.n_in = n_in;
  tile.y_stride = y_stride;
  return tile;
}

// Raw K-quant blocks at the extremes the SIMD tiles' int16 bounds are derived for (every code
// at its maximum, scales and mins at 63, activations at +127 / -128), and fully random bytes,
// through the tile kernels directly (the Q8_K quantizer never emits -128, so MatMul could not
// reach it): rows [0 or 3, 1..9), 1..4 tokens (1..8 on AVX-512), 1 and 33 super-blocks.
enum class Fill { kMax, kRandom };
enum class ActFill { kPlus127, kMinus128, kAlternating, kRandom };

void FillWeights(DType t, Fill fill, std::mt19937& rng, uint8_t* w, size_t bytes) {
  std::uniform_int_distribution<int> byte(0, 255);
  for (size_t i = 0; i < bytes; ++i)
    w[i] = fill == Fill::kMax ? 0xFF : static_cast<uint8_t>(byte(rng));
  // Finite block scales: d = 1 / 64 (and dmin = 1 / 128) or random in [-2, 2].
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  const size_t block = t == DType::kQ6_K
                           ? sizeof(BlockQ6_K)
                           : (t == DType::kQ4_K ? sizeof(BlockQ4_K) : sizeof(BlockQ5_K));
  for (size_t b = 0; b + block <= bytes; b += block) {
    const uint16_t d = F32ToF16(fill == Fill::kMax ? 1.0f / 64 : ud(rng));
    const uint16_t dmin = F32ToF16(fill == Fill::kMax ? 1.0f / 128 : ud(rng));
    if (t == DType::kQ6_K) {
      std::memcpy(w + b + offsetof(BlockQ6_K, d), &d, 2);
      if (fill == Fill::kMax) std::memset(w + b + offsetof(BlockQ6_K, scales), 127, 16);
    } else {
      std::memcpy(w + b, &d, 2);
      std::memcpy(w + b + 2, &dmin, 2);
    }
  }
}

void FillActivations(ActFill fill, std::mt19937& rng, BlockQ8_K* x, int64_t nb) {
  std::uniform_int_distribution<int> code(-128, 127);
  for (int64_t b = 0; b < nb; ++b) {
    x[b].d = fill == ActFill::kRandom ? 0.01f * static_cast<float>(code(rng) + 129) : 1.0f / 128;
    for (int i = 0; i < 256; ++i) {
      int v = 0;
      switch (fill) {
        case ActFill::kPlus127:
          v = 127;
          break;
        case ActFill::kMinus128:
          v = -128;
          break;
        case ActFill::kAlternating:
          v = (i / 2) % 2 ? -128 : 127;
          break;
        case ActFill::kRandom:
          v = code(rng);
          break;
      }
      x[b].qs[i] = static_cast<int8_t>(v);
    }
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += x[b].qs[16 * g + l];
      x[b].bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

// An upper bound on sum_i |w_i x_i| over the terms both sides add (the code and min parts
// separately, as they cancel): |d| 63 cmax + |dmin| 63 per Q4_K/Q5_K value, |d| 128 32 per Q6_K.
double TermBound(DType t, const uint8_t* w, const BlockQ8_K* x, int64_t nb) {
  double bound = 0;
  for (int64_t b = 0; b < nb; ++b) {
    double ax = 0;
    for (int i = 0; i < 256; ++i) ax += std::abs(int{x[b].qs[i]});
    ax *= std::fabs(x[b].d);
    uint16_t d, dmin;
    if (t == DType::kQ6_K) {
      std::memcpy(&d, w + b * sizeof(BlockQ6_K) + offsetof(BlockQ6_K, d), 2);
      bound += ax * std::fabs(F16ToF32(d)) * 128 * 32;
    } else {
      const size_t block = t == DType::kQ4_K ? sizeof(BlockQ4_K) : sizeof(BlockQ5_K);
      std::memcpy(&d, w + b * block, 2);
      std::memcpy(&dmin, w + b * block + 2, 2);
      const double cmax = t == DType::kQ4_K ? 15 : 31;
      bound += ax * (std::fabs(F16ToF32(d)) * 63 * cmax + std::fabs(F16ToF32(dmin)) * 63);
    }
  }
  return bound;
}

// The K-quant tile kernel of a SIMD target.
MatMulTileFn KQuantTile(Isa isa, DType t) {
  return isa == Isa::kAvx512 ? avx512::MatMulTileKernel(t) : avx2::MatMulTileKernel(t);
}

// The AVX-512 K-quant tiles take up to 16 tokens; AVX2's and the scalar twin's up to 4.
constexpr int kMaxKTokens = 16;

// A tile of any token count through a kernel that takes at most `most` tokens per call.
void InPieces(MatMulTileFn fn, int most, const MatMulTile& t, int64_t r0, int64_t r1) {
  for (int j0 = 0; j0 < t.nt; j0 += most) {
    MatMulTile s = t;
    s.nt = std::min(most, t.nt - j0);
    s.xq = t.xq + j0 * t.xq_stride;
    s.y = t.y + j0 * t.y_stride;
    fn(s, r0, r1);
  }
}

void CheckExtremeKQuantTiles(Isa isa) {
  std::mt19937 rng(11);
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const MatMulTileFn simd = KQuantTile(isa, t);
    const MatMulTileFn ref = matmul_ref::TileKernel(t);
    const int max_tokens =
        isa == Isa::kAvx512 ? avx512::MatMulTileTokens(t) : avx2::MatMulTileTokens(t);
    ASSERT_NE(simd, nullptr);
    for (int64_t n_in : {int64_t{256}, int64_t{256 * 33}}) {
      const int64_t nb = n_in / 256;
      const size_t w_row_bytes = static_cast<size_t>(*RowBytes(t, n_in));
      for (Fill wf : {Fill::kMax, Fill::kRandom}) {
        for (ActFill af :
             {ActFill::kPlus127, ActFill::kMinus128, ActFill::kAlternating, ActFill::kRandom}) {
          // 9 rows: the one-token kernels take rows 4 at a time; r0 = 3 starts a group mid-way.
          const int64_t n_rows = 9;
          std::vector<uint8_t> w(w_row_bytes * n_rows);
          FillWeights(t, wf, rng, w.data(), w.size());
          std::vector<BlockQ8_K> x(nb * kMaxKTokens);
          FillActivations(af, rng, x.data(), nb * kMaxKTokens);
          for (int nt = 1; nt <= max_tokens; ++nt) {
            for (int64_t r0 : {int64_t{0}, int64_t{3}}) {
              for (int64_t r1 = r0 + 1; r1 <= n_rows; ++r1) {
                MatMulTile tile = KTile(w, w_row_bytes, x, nt, n_in, n_rows + 1);
                std::vector<float> y_simd(kMaxKTokens * tile.y_stride, -7.0f), y_ref = y_simd;
                tile.y = y_simd.data();
                simd(tile, r0, r1);
                tile.y = y_ref.data();
                InPieces(ref, kMatMulTileTokens, tile, r0, r1);
                for (size_t i = 0; i < y_ref.size(); ++i) {
                  // Exact integer sums on both sides; the f32 conversions, scalings and summation
                  // order differ: a few roundings of 2^-24 each, relative to the terms' magnitude.
                  const int64_t j = static_cast<int64_t>(i) / tile.y_stride;
                  const int64_t r = static_cast<int64_t>(i) % tile.y_stride;
                  const bool written = j < nt && r >= r0 && r < r1;  // elsewhere both must stay -7
                  const double tol = written ? 1e-6 * TermBound(t, w.data() + r * w_row_bytes,
                                                                x.data() + j * nb, nb)
                                             : 0;
                  ASSERT_NEAR(y_simd[i], y_ref[i], tol)
                      << DTypeName(t) << " n_in " << n_in << " fill " << static_cast<int>(wf) << "/"
                      << static_cast<int>(af) << " nt " << nt << " rows " << r0 << ".." << r1
                      << " index " << i;
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST(MatMulKQuantTiles, ExtremeCodesMatchScalarTwin) {
  if (!HasIsa(Isa::kAvx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  for (const Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!HasIsa(isa)) continue;
    SCOPED_TRACE(IsaName(isa));
    CheckExtremeKQuantTiles(isa);
  }
}

// The AVX-512 K-quant kernels (vpdpbusd, int32 without the int16 stage) compute the same
// exact integer super-block sums as the AVX2 ones and follow the same f32 recipe: the same bits,
// on the extremes above, random blocks, every row range of 1..9 rows and 1..16 tokens (AVX2 takes
// them 4 at a time; 9..16 are the tokens-in-lanes tiles), 1 and 33 super-blocks (slices of 32 or
// 16 in the 4- and 8-token tiles, of 8 in the 16-token ones: a partial last slice each).
TEST(MatMulKQuantTiles, Avx512BitsEqualAvx2) {
  if (!HasIsa(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(12);
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const MatMulTileFn a = avx2::MatMulTileKernel(t), b = avx512::MatMulTileKernel(t);
    ASSERT_NE(b, nullptr) << DTypeName(t);
    ASSERT_EQ(avx512::MatMulTileTokens(t), kMaxKTokens) << DTypeName(t);
    for (int64_t n_in : {int64_t{256}, int64_t{256 * 33}}) {
      const int64_t nb = n_in / 256;
      const size_t w_row_bytes = static_cast<size_t>(*RowBytes(t, n_in));
      for (Fill wf : {Fill::kMax, Fill::kRandom}) {
        for (ActFill af : {ActFill::kMinus128, ActFill::kAlternating, ActFill::kRandom}) {
          const int64_t n_rows = 9;
          std::vector<uint8_t> w(w_row_bytes * n_rows);
          FillWeights(t, wf, rng, w.data(), w.size());
          std::vector<BlockQ8_K> x(nb * kMaxKTokens);
          FillActivations(af, rng, x.data(), nb * kMaxKTokens);
          for (int nt = 1; nt <= kMaxKTokens; ++nt) {
            for (int64_t r0 = 0; r0 < n_rows; ++r0) {
              MatMulTile tile = KTile(w, w_row_bytes, x, nt, n_in, n_rows);
              std::vector<float> ya(kMaxKTokens * n_rows, -7.0f), yb = ya;
              tile.y = ya.data();
              InPieces(a, kMatMulTileTokens, tile, r0, n_rows);
              tile.y = yb.data();
              b(tile, r0, n_rows);
              ASSERT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
                  << DTypeName(t) << " n_in " << n_in << " fill " << static_cast<int>(wf) << "/"
                  << static_cast<int>(af) << " nt " << nt << " rows " << r0 << "..9";
            }
          }
        }
      }
    }
  }
}

// The 9..16-token tiles read their activations transposed, from the table MatMul fills once per
// call (xtab) or, called without one, from slices they transpose themselves: the same bits either
// way, on both weight layouts' kernels (the interleaved kernel on the file layout's bytes of one
// group is the same code with another stride; here the file layout), 1 and 33 super-blocks.
TEST(MatMulKQuantTiles, WideTilesReadTheTableAsTheirOwnSlices) {
  if (!HasIsa(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(13);
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const MatMulTileFn fn = avx512::MatMulTileKernelKWide(t, false);
    ASSERT_NE(fn, nullptr) << DTypeName(t);
    for (int64_t n_in : {int64_t{256}, int64_t{256 * 33}}) {
      const int64_t nb = n_in / 256;
      const size_t w_row_bytes = static_cast<size_t>(*RowBytes(t, n_in));
      const int64_t n_rows = 7;
      std::vector<uint8_t> w(w_row_bytes * n_rows);
      FillWeights(t, Fill::kRandom, rng, w.data(), w.size());
      std::vector<BlockQ8_K> x(nb * kMaxKTokens);
      FillActivations(ActFill::kRandom, rng, x.data(), nb * kMaxKTokens);
      const size_t stride = avx512::KQuantActTableBytes(n_in);
      ASSERT_EQ(stride, nb * sizeof(BlockQ8_K));
      // One byte past 64-byte alignment: the kernels must not assume an aligned scratch.
      std::vector<uint8_t> table(stride * kMaxKTokens + 65);
      uint8_t* tab = table.data() + (64 - reinterpret_cast<uintptr_t>(table.data()) % 64) + 1;
      for (int nt = 9; nt <= kMaxKTokens; ++nt) {
        MatMulTile tile = KTile(w, w_row_bytes, x, nt, n_in, n_rows);
        std::vector<float> ya(kMaxKTokens * n_rows, -7.0f), yb = ya;
        tile.y = ya.data();
        fn(tile, 1, n_rows);
        avx512::FillKQuantActTable(tile.xq, tile.xq_stride, nt, n_in, tab);
        tile.xtab = tab;
        tile.xtab_stride = stride;
        tile.y = yb.data();
        fn(tile, 1, n_rows);
        ASSERT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
            << DTypeName(t) << " n_in " << n_in << " nt " << nt;
      }
    }
  }
}

// The one-token K-quant kernels take 4 rows per step (a last group repeats its last row): every
// row count around that, one token and the multi-token tiles beside it, one and three
// super-blocks, through MatMul on every ISA and thread count against the scalar twin (the
// tolerance of EveryIsaMatchesScalarTwin: exact integer super-block sums, f32 order aside).
TEST(MatMulKQuantTiles, EveryRowCountMatchesScalarTwin) {
  Isa isas[3];
  const int n_isas = AvailableIsas(isas);
  uint32_t seed = 9000;
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    for (int64_t n_out : {1, 2, 3, 4, 5, 6, 7, 8, 9, 13}) {
      for (int64_t n_in : {256, 768}) {
        for (int64_t nt : {1, 2, 5}) {
          const Problem p = MakeProblem(t, Shape{n_out, n_in, nt}, seed++);
          for (int k = 0; k < n_isas; ++k) {
            for (ThreadPool* pool : {&Pool(1), &Pool(3)}) {
              const std::vector<float> y = RunMatMul(p, *pool, isas[k]);
              for (size_t i = 0; i < y.size(); ++i) {
                ASSERT_LE(std::fabs(double{y[i]} - p.y_ref[i]), 2e-6 * p.abs_ref[i] + 1e-30)
                    << DTypeName(t) << " " << IsaName(isas[k]) << " threads " << pool->size()
                    << " shape " << n_out << "x" << n_in << "x" << nt << " index " << i;
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace gannet::cpu
