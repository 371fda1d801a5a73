// MatMul on every compiled ISA against the scalar twin (tensor/quant's VecDotRef on the
// reference-quantized activations), on odd shapes, thread counts and strides; the scalar path
// against a plain f32 dot of the dequantized weights; the SIMD activation quantizers against
// the reference quantizers byte for byte.
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

const DType kWeightTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                              DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                              DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

using matmul_testing::HasIsa;
using matmul_testing::MakeProblem;
using matmul_testing::Pool;
using matmul_testing::Problem;
using matmul_testing::RandomValues;
using matmul_testing::RunMatMul;
using matmul_testing::Shape;
using matmul_testing::ShapesFor;

class MatMulConformance : public testing::TestWithParam<DType> {};

TEST_P(MatMulConformance, EveryIsaMatchesScalarTwin) {
  const DType wtype = GetParam();
  Isa isas[3];
  const int n_isas = AvailableIsas(isas);
  ThreadPool& pool1 = Pool(1);
  ThreadPool& pool3 = Pool(3);
  uint32_t seed = 100;
  for (const Shape& s : ShapesFor(wtype)) {
    const Problem p = MakeProblem(wtype, s, seed++);
    for (int k = 0; k < n_isas; ++k) {
      for (ThreadPool* pool : {&pool1, &pool3}) {
        const std::vector<float> y = RunMatMul(p, *pool, isas[k]);
        int bad = 0;
        for (size_t i = 0; i < y.size() && bad < 3; ++i) {
          // Same integer block sums; only the f32 order of the scaled sums differs.
          const double tol = 2e-6 * p.abs_ref[i] + 1e-30;
          if (!(std::fabs(double{y[i]} - p.y_ref[i]) <= tol)) {
            ++bad;
            ADD_FAILURE() << DTypeName(wtype) << " " << IsaName(isas[k]) << " threads "
                          << pool->size() << " shape " << s.n_out << "x" << s.n_in << "x"
                          << s.n_tokens << " [" << i / s.n_out << ", " << i % s.n_out << "]: got "
                          << y[i] << " want " << p.y_ref[i] << " tol " << tol;
          }
        }
      }
    }
    // The scalar path against exact f32 arithmetic: only activation rounding separates them
    // (Q8 codes: at most half a step of amax/127 per value, random in sign).
    const std::vector<float> y = RunMatMul(p, pool3, Isa::kScalar);
    const double rel = Traits(DotPartner(wtype)).is_quantized ? 0.01 : 1e-5;
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_LE(std::fabs(double{y[i]} - p.y_f32[i]), rel * p.abs_f32[i] + 1e-6)
          << DTypeName(wtype) << " shape " << s.n_out << "x" << s.n_in << "x" << s.n_tokens;
    }
  }
}

// Batch invariance: a (row, token) result must not depend on which other tokens and rows share
// the call (tile width, the token's place in its tile, the row's place in its chunk, threads),
// bit for bit. The serving engine batches unrelated requests and splits prompts into chunks; with
// this property a request's greedy output is the same alone, batched or chunked.
TEST_P(MatMulConformance, ResultsDoNotDependOnTheBatch) {
  const DType wtype = GetParam();
  Isa isas[3];
  const int n_isas = AvailableIsas(isas);
  const int64_t bs = Traits(wtype).block_size;
  const Shape s{.n_out = 37, .n_in = bs == 1 ? 200 : (bs == 32 ? 320 : 512), .n_tokens = 11};
  const Problem p = MakeProblem(wtype, s, 7);
  for (int k = 0; k < n_isas; ++k) {
    const std::vector<float> all = RunMatMul(p, Pool(3), isas[k]);
    // Every run of consecutive tokens [t0, t0 + n) and every row range [r0, n_out) gives the same
    // bits.
    for (int64_t t0 = 0; t0 < s.n_tokens; t0 += 3) {
      for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{5}}) {
        if (t0 + n > s.n_tokens) continue;
        for (int64_t r0 : {int64_t{0}, int64_t{1}, int64_t{3}}) {
          Problem q = p;
          q.s = Shape{.n_out = s.n_out - r0, .n_in = s.n_in, .n_tokens = n};
          q.w.erase(q.w.begin(), q.w.begin() + static_cast<std::ptrdiff_t>(r0 * p.w_row_bytes));
          q.x.erase(q.x.begin(), q.x.begin() + static_cast<std::ptrdiff_t>(t0 * p.x_stride));
          for (ThreadPool* pool : {&Pool(1), &Pool(3)}) {
            const std::vector<float> part = RunMatMul(q, *pool, isas[k]);
            for (int64_t t = 0; t < n; ++t) {
              for (int64_t o = 0; o < q.s.n_out; ++o) {
                const float want = all[(t0 + t) * s.n_out + r0 + o];
                const float got = part[t * q.s.n_out + o];
                ASSERT_EQ(std::memcmp(&want, &got, sizeof(float)), 0)
                    << DTypeName(wtype) << " " << IsaName(isas[k]) << " threads " << pool->size()
                    << ": token " << t0 + t << " row " << r0 + o << " alone in a call of " << n
                    << " tokens from row " << r0 << ": " << got << " vs " << want
                    << " in the whole batch";
              }
            }
          }
        }
      }
    }
  }
}

// The AVX-512 target's kernels (vpdpbusd, no int16 stage) form the same exact integer block sums
// as the AVX2 ones and follow the same f32 steps, and the types without an AVX-512 kernel run the
// AVX2 one: every type gives the AVX2 bits, on every shape and thread count.
TEST_P(MatMulConformance, Avx512BitsEqualAvx2) {
  if (!HasIsa(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  const DType wtype = GetParam();
  uint32_t seed = 300;
  for (const Shape& s : ShapesFor(wtype)) {
    const Problem p = MakeProblem(wtype, s, seed++);
    for (ThreadPool* pool : {&Pool(1), &Pool(3)}) {
      const std::vector<float> a = RunMatMul(p, *pool, Isa::kAvx2);
      const std::vector<float> b = RunMatMul(p, *pool, Isa::kAvx512);
      ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
          << DTypeName(wtype) << " threads " << pool->size() << " shape " << s.n_out << "x"
          << s.n_in << "x" << s.n_tokens;
    }
  }
}

std::string TypeName(const testing::TestParamInfo<DType>& info) {
  return std::string(DTypeName(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulConformance, testing::ValuesIn(kWeightTypes), TypeName);

// ---- The 32-value row-block kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) -----------------------------
// They take 4 weight rows x up to 16 tokens per step (rows reduced into vector lanes, int16 sums
// of unsigned Q4_0 / Q4_1 / Q5_0 / Q5_1 codes, a per-pass activation table), so these cases sit
// on their edges: row counts around multiples of 4, every token count up to one past the tile,
// the smallest and odd block counts, and widths whose table needs several passes or does not fit
// at all.

const DType kRowBlockTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                DType::kQ8_0};

bool HasMin(DType t) { return t == DType::kQ4_1 || t == DType::kQ5_1; }

// Both sides sum the same exact block integers (the kernels split a block in two 16-value
// halves, each exact in f32) times the same rounded scale dw * dx. The reference adds nb terms in
// order with a rounding per product and per addition; the kernels add 2 nb fused terms in 8
// lanes and then the halves. Each is within (nb + 2) u sum|terms| of the exact sum, and
// sum|terms| <= sum |w x| over the dequantized values, so they differ by at most
// (2 nb + 4) u abs_ref with u = 2^-24 (plus the smallest normal, for sums that underflow).
// Types with a block min add nb more terms (m s, fused into the first half's lanes; the reference
// rounds a product and a sum more per block) and their |terms| can exceed abs_ref, since d q and
// m cancel in w: (3 nb + 4) u abs_terms.
double RowBlockTolerance(DType wtype, int64_t n_in, double abs_terms) {
  const double u = std::ldexp(1.0, -24);
  const int64_t nb = n_in / 32;
  return static_cast<double>((HasMin(wtype) ? 3 : 2) * nb + 4) * u * abs_terms + 1e-37;
}

void ExpectRowBlockMatch(const Problem& p, const std::vector<float>& y, const char* isa,
                         int threads) {
  const Shape& s = p.s;
  int bad = 0;
  for (size_t i = 0; i < y.size() && bad < 3; ++i) {
    const double tol = RowBlockTolerance(p.wtype, s.n_in, p.abs_terms[i]);
    if (!(std::fabs(double{y[i]} - p.y_ref[i]) <= tol)) {
      ++bad;
      ADD_FAILURE() << DTypeName(p.wtype) << " " << isa << " threads " << threads << " shape "
                    << s.n_out << "x" << s.n_in << "x" << s.n_tokens << " [" << i / s.n_out << ", "
                    << i % s.n_out << "]: got " << y[i] << " want " << p.y_ref[i] << " tol " << tol;
    }
  }
}

std::vector<Shape> TileEdgeShapes() {
  std::vector<Shape> shapes;
  // Row counts around the AVX2 kernels' groups of 4 and the AVX-512 kernels' groups of 8.
  for (const int64_t n_out : {1, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 255}) {
    for (int64_t nt = 1; nt <= kMatMulWideTileTokens + 1; ++nt) shapes.push_back({n_out, 32, nt});
    for (const int64_t nt : {2, 4, 5, 16, 33}) shapes.push_back({n_out, 352, nt});
  }
  // AVX2: Q4_0 / Q5_0 tables hold 36 bytes per (token, block): 200 blocks take two passes of 16
  // tokens; 2000 blocks fit no pass and take the 1-row tiles. Q4_1 / Q5_1 tables hold 8 bytes
  // (640 blocks: two passes; 8448: none) and Q8_0's 4 (1280 blocks: two passes; 16896: none).
  // AVX-512 Q4_0 / Q4_1: one token's 4-row table holds up to 182 blocks (180: that kernel; 200:
  // the 8-row one), the 8-row kernel's 2048 blocks per pass (640: 3 tokens; 2000: 1 for Q4_1,
  // while Q4_0 follows AVX2 to the 1-row tiles; 8448: the AVX2 kernel).
  shapes.push_back({9, 5760, 1});
  shapes.push_back({9, 6400, 1});
  shapes.push_back({9, 6400, 17});
  shapes.push_back({6, 64000, 3});
  shapes.push_back({5, 20480, 17});
  shapes.push_back({3, 270336, 2});
  shapes.push_back({5, 40960, 17});
  shapes.push_back({2, 540672, 2});
  return shapes;
}

TEST(MatMulRowBlocks, EveryIsaMatchesScalarTwinOnTileEdges) {
  Isa isas[3];
  const int n_isas = AvailableIsas(isas);
  ThreadPool& pool1 = Pool(1);
  ThreadPool& pool3 = Pool(3);
  uint32_t seed = 5000;
  for (const DType wtype : kRowBlockTypes) {
    for (const Shape& s : TileEdgeShapes()) {
      const Problem p = MakeProblem(wtype, s, seed++);
      for (int k = 0; k < n_isas; ++k) {
        for (ThreadPool* pool : {&pool1, &pool3}) {
          ExpectRowBlockMatch(p, RunMatMul(p, *pool, isas[k]), IsaName(isas[k]), pool->size());
        }
      }
    }
  }
}

// The AVX-512 row-block kernels (their own row groups, lane layouts and table passes) against
// the AVX2 ones, bit for bit, on the same edges.
TEST(MatMulRowBlocks, Avx512BitsEqualAvx2OnTileEdges) {
  if (!HasIsa(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  uint32_t seed = 9000;
  for (const DType wtype : kRowBlockTypes) {
    for (const Shape& s : TileEdgeShapes()) {
      const Problem p = MakeProblem(wtype, s, seed++);
      for (ThreadPool* pool : {&Pool(1), &Pool(3)}) {
        const std::vector<float> a = RunMatMul(p, *pool, Isa::kAvx2);
        const std::vector<float> b = RunMatMul(p, *pool, Isa::kAvx512);
        ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
            << DTypeName(wtype) << " threads " << pool->size() << " shape " << s.n_out << "x"
            << s.n_in << "x" << s.n_tokens;
      }
    }
  }
}

// Hand-made blocks at the ends of the code and activation ranges with unit scales: every sum is
// an integer far below 2^24, so any order gives the exact value and an overflow of the int16
// partial sums (or a saturated maddubs) shows as a wrong integer. A fourth pattern of random
// bytes checks that every code (nibble and 5th bit) meets its own activation. One token takes the
// decode loop (whole groups of four rows; the ninth row the 4-row tile's partial group).
// The AVX-512 target runs its own Q8_0 kernel (offset codes, exact for -128 activations too), its
// own Q4_0 / Q4_1 / Q5_0 / Q5_1 kernels (stored codes, like AVX2's).
void CheckExtremeRowBlocks(Isa isa);

TEST(MatMulRowBlocks, ExtremeCodesAndActivationsAreExact) {
  if (!HasIsa(Isa::kAvx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  for (const Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!HasIsa(isa)) continue;
    SCOPED_TRACE(IsaName(isa));
    CheckExtremeRowBlocks(isa);
  }
}

void CheckExtremeRowBlocks(Isa isa) {
  constexpr int64_t kNOut = 9, kNIn = 96, kNb = kNIn / 32;
  constexpr uint16_t kOne = 0x3C00;  // f16 1.0
  constexpr uint16_t kMin = 0xC000;  // f16 -2.0, the block min of Q4_1 / Q5_1
  for (const DType wtype : kRowBlockTypes) {
    const size_t row_bytes = static_cast<size_t>(*RowBytes(wtype, kNIn));
    std::vector<uint8_t> w(row_bytes * kNOut);
    std::mt19937 rng(77);
    const auto random_byte = [&rng] { return static_cast<uint8_t>(rng() & 0xFF); };
    // Row r: fill byte patterns chosen per row: all codes at the top, all at the bottom, mixed,
    // random.
    for (int64_t r = 0; r < kNOut; ++r) {
      for (int64_t b = 0; b < kNb; ++b) {
        uint8_t* blk = w.data() + r * row_bytes + b * (row_bytes / kNb);
        const int pattern = static_cast<int>((r + b) % 4);
        if (wtype == DType::kQ8_0) {
          auto* q = reinterpret_cast<BlockQ8_0*>(blk);
          q->d = kOne;
          for (int i = 0; i < 32; ++i) {
            q->qs[i] = static_cast<int8_t>(pattern == 0   ? -128
                                           : pattern == 1 ? 127
                                           : pattern == 2 ? (i % 2 ? -128 : 127)
                                                          : static_cast<int8_t>(random_byte()));
          }
        } else {
          const uint8_t nib = pattern == 0 ? 0xFF : pattern == 1 ? 0x00 : 0xF0;
          uint8_t* qs = nullptr;
          uint8_t* qh = nullptr;
          if (wtype == DType::kQ4_0) {
            auto* q = reinterpret_cast<BlockQ4_0*>(blk);
            q->d = kOne;
            qs = q->qs;
          } else if (wtype == DType::kQ4_1) {
            auto* q = reinterpret_cast<BlockQ4_1*>(blk);
            q->d = kOne;
            q->m = kMin;
            qs = q->qs;
          } else if (wtype == DType::kQ5_0) {
            auto* q = reinterpret_cast<BlockQ5_0*>(blk);
            q->d = kOne;
            qs = q->qs;
            qh = q->qh;
          } else {
            auto* q = reinterpret_cast<BlockQ5_1*>(blk);
            q->d = kOne;
            q->m = kMin;
            qs = q->qs;
            qh = q->qh;
          }
          for (int i = 0; qh != nullptr && i < 4; ++i) {
            qh[i] = pattern == 0 ? 0xFF : pattern == 1 ? 0x00 : pattern == 2 ? 0x0F : random_byte();
          }
          for (int i = 0; i < 16; ++i) qs[i] = pattern == 3 ? random_byte() : nib;
        }
      }
    }
    // Activations: all +127, all -127, alternating, random. The quantizers never produce -128,
    // and the kernels that use the sign trick (AVX2 Q8_0) rely on that; the unsigned-code kernels
    // (Q4_0, Q4_1, Q5_0, Q5_1, and AVX-512 Q8_0, whose codes are offset to unsigned) multiply
    // -128 as it is, so their extremes take -128. Q8_1 blocks
    // (the partner of Q4_1 / Q5_1) carry s = d * sum(codes), an integer here: the min terms m s
    // are exact too.
    const int x_min = wtype == DType::kQ8_0 && isa == Isa::kAvx2 ? -127 : -128;
    const DType partner = DotPartner(wtype);
    for (const int nt : {1, 2, 3, 4, 5, 16}) {
      const size_t x_bytes = static_cast<size_t>(*RowBytes(partner, kNIn));
      std::vector<uint8_t> xq(x_bytes * nt);
      for (int j = 0; j < nt; ++j) {
        for (int64_t b = 0; b < kNb; ++b) {
          uint8_t* blk = xq.data() + j * x_bytes + b * (x_bytes / kNb);
          int8_t* qs = partner == DType::kQ8_1 ? reinterpret_cast<BlockQ8_1*>(blk)->qs
                                               : reinterpret_cast<BlockQ8_0*>(blk)->qs;
          const int pattern = static_cast<int>((j + b) % 4);
          int sum = 0;
          for (int i = 0; i < 32; ++i) {
            const int random = x_min + static_cast<int>(rng() % static_cast<uint32_t>(128 - x_min));
            qs[i] = static_cast<int8_t>(pattern == 0   ? 127
                                        : pattern == 1 ? x_min
                                        : pattern == 2 ? (i % 2 ? 127 : x_min)
                                                       : random);
            sum += qs[i];
          }
          if (partner == DType::kQ8_1) {
            auto* x = reinterpret_cast<BlockQ8_1*>(blk);
            x->d = kOne;
            x->s = F32ToF16(static_cast<float>(sum));
          } else {
            reinterpret_cast<BlockQ8_0*>(blk)->d = kOne;
          }
        }
      }
      std::vector<float> y(nt * kNOut, -1.0f);
      MatMulTile tile;
      tile.w = w.data();
      tile.w_row_bytes = row_bytes;
      tile.xq = xq.data();
      tile.xq_stride = x_bytes;
      tile.nt = nt;
      tile.n_in = kNIn;
      tile.y = y.data();
      tile.y_stride = kNOut;
      MatMulTileFn fn = avx2::MatMulTileKernel(wtype);
      int tile_tokens = avx2::MatMulTileTokens(wtype);
      if (isa == Isa::kAvx512 && avx512::MatMulTileKernel(wtype) != nullptr) {
        fn = avx512::MatMulTileKernel(wtype);
        tile_tokens = avx512::MatMulTileTokens(wtype);
      }
      ASSERT_EQ(tile_tokens, kMatMulWideTileTokens) << DTypeName(wtype);
      ASSERT_NE(fn, nullptr) << DTypeName(wtype);
      fn(tile, 0, kNOut);
      for (int j = 0; j < nt; ++j) {
        for (int64_t r = 0; r < kNOut; ++r) {
          const float want =
              VecDotRef(wtype, w.data() + r * row_bytes, xq.data() + j * x_bytes, kNIn);
          ASSERT_EQ(y[j * kNOut + r], want)
              << DTypeName(wtype) << " tokens " << nt << " [" << j << ", " << r << "]";
        }
      }
    }
  }
}

TEST(MatMulQuantizers, SimdBytesEqualReference) {
  Isa isas[3];
  const int n_isas = AvailableIsas(isas);
  bool have_avx2 = false;
  for (int k = 0; k < n_isas; ++k) have_avx2 |= isas[k] == Isa::kAvx2;
  if (!have_avx2) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(7);
  const int64_t n = 256 * 16;
  std::vector<float> x = RandomValues(rng, n, 1.0f);
  // Ties: amax 127 makes the Q8_0 step exactly 1, so k + 0.5 are exact ties for roundf; the Q8_K
  // scale -127 / max is -1 there, so they are ties for round-half-even too.
  for (int i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 64) - 31.5f;
  x[0] = 127.0f;
  x[32] = -127.0f;
  x[64] = 127.0f;
  x[96] = -127.0f;
  for (int i = 256; i < 512; ++i) x[i] = 0.0f;  // zero super-block
  x[512] = -3.0f;                               // equal magnitudes: the first one's sign wins
  x[600] = 3.0f;
  for (int i = 513; i < 768; ++i)
    if (i != 600) x[i] = 0.25f * static_cast<float>(i % 7);
  for (DType partner : {DType::kQ8_0, DType::kQ8_1, DType::kQ8_K}) {
    const size_t bytes = static_cast<size_t>(*RowBytes(partner, n));
    std::vector<uint8_t> ref(bytes, 0x11), simd(bytes, 0x22);
    matmul_ref::Quantizer(partner)(x.data(), ref.data(), n);
    avx2::MatMulQuantizer(partner)(x.data(), simd.data(), n);
    for (size_t i = 0; i < bytes; ++i) {
      ASSERT_EQ(int{simd[i]}, int{ref[i]}) << DTypeName(partner) << " byte " << i;
    }
  }
}

TEST(MatMul, ScratchBytes) {
  EXPECT_EQ(MatMulScratchBytes(DType::kF32, 100, 3), 0u);
  EXPECT_EQ(MatMulScratchBytes(DType::kF16, 64, 3), 0u);
  EXPECT_EQ(MatMulScratchBytes(DType::kQ4_0, 64, 3), 3u * 2 * 34);
  EXPECT_EQ(MatMulScratchBytes(DType::kQ5_1, 64, 2), 2u * 2 * 36);
  EXPECT_EQ(MatMulScratchBytes(DType::kQ6_K, 512, 5), 5u * 2 * 292);
}

}  // namespace
}  // namespace gannet::cpu
