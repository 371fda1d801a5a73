// The AVX-512 Q4_0 / Q4_1 / Q5_0 / Q5_1 tiles with the tokens in the lanes (7..16 tokens, two
// lane layouts), called directly: the bits of the AVX2 kernels on random blocks with every code
// and 5th bit and activations at -128 / +127 (which MatMul's quantizer never emits), with and
// without MatMul's transposed table (unaligned), on rows too wide for a tile's own table; and a
// (row, token) result that does not depend on the tile's other tokens.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "matmul_problem.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

using matmul_testing::HasIsa;

constexpr int kTokens = kMatMulWideTileTokens;
constexpr DType kTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1};

bool HasMin(DType t) { return t == DType::kQ4_1 || t == DType::kQ5_1; }

// Random weight bytes (every nibble and 5th bit) with finite scales d (and m) in [-2, 2].
std::vector<uint8_t> RandomWeights(DType t, int64_t n_rows, int64_t n_in, std::mt19937& rng) {
  const size_t row_bytes = static_cast<size_t>(*RowBytes(t, n_in));
  const size_t block = row_bytes / static_cast<size_t>(n_in / 32);
  std::vector<uint8_t> w(row_bytes * n_rows);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-2.0f, 2.0f);
  for (uint8_t& b : w) b = static_cast<uint8_t>(byte(rng));
  for (size_t at = 0; at < w.size(); at += block) {
    const uint16_t d = F32ToF16(scale(rng)), m = F32ToF16(scale(rng));
    std::memcpy(&w[at], &d, 2);
    if (HasMin(t)) std::memcpy(&w[at + 2], &m, 2);
  }
  return w;
}

// kTokens activation rows of the partner type (Q8_0 or Q8_1): random codes over the full int8
// range (-128 included) or, with `extreme`, alternating runs of -128 and +127.
std::vector<uint8_t> RandomActivations(DType t, int64_t n_in, bool extreme, std::mt19937& rng) {
  const int64_t nb = n_in / 32;
  const bool q8_1 = HasMin(t);
  const size_t block = q8_1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
  std::vector<uint8_t> x(block * nb * kTokens);
  std::uniform_int_distribution<int> code(-128, 127);
  std::uniform_real_distribution<float> scale(0.001f, 0.1f);
  for (int64_t b = 0; b < nb * kTokens; ++b) {
    int8_t qs[32];
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      qs[i] = static_cast<int8_t>(extreme ? ((i / 3 + b) % 2 ? -128 : 127) : code(rng));
      sum += qs[i];
    }
    const float d = scale(rng);
    uint8_t* dst = &x[b * block];
    const uint16_t dh = F32ToF16(d), sh = F32ToF16(d * static_cast<float>(sum));
    std::memcpy(dst, &dh, 2);
    if (q8_1) std::memcpy(dst + 2, &sh, 2);
    std::memcpy(dst + block - 32, qs, 32);
  }
  return x;
}

struct Case {
  DType t;
  int64_t n_in = 0, n_rows = 0;
  std::vector<uint8_t> w, x;
  size_t w_row_bytes = 0, x_stride = 0;

  MatMulTile Tile(int nt, int first_token, float* y) const {
    MatMulTile tile;
    tile.w = w.data();
    tile.w_row_bytes = w_row_bytes;
    tile.xq = x.data() + first_token * x_stride;
    tile.xq_stride = x_stride;
    tile.nt = nt;
    tile.n_in = n_in;
    tile.y = y;
    tile.y_stride = n_rows;
    return tile;
  }
};

Case MakeCase(DType t, int64_t n_rows, int64_t n_in, bool extreme, std::mt19937& rng) {
  Case c{.t = t, .n_in = n_in, .n_rows = n_rows};
  c.w = RandomWeights(t, n_rows, n_in, rng);
  c.x = RandomActivations(t, n_in, extreme, rng);
  c.w_row_bytes = static_cast<size_t>(*RowBytes(t, n_in));
  c.x_stride = c.x.size() / kTokens;
  return c;
}

// 1 and 11 blocks (a partial slice of the unpacked codes), 64 (the widest row a tile transposes
// for itself), 65 (wider: MatMul's table, or the 8-row kernel), odd block counts for the pairs of
// blocks the table fill transposes at once.
constexpr int64_t kWidths[] = {32, 352, 2048, 2080};

// Every token count of a tile and every row range from r0 in 0..4 to 11 rows (steps of 4 and 8
// rows with a partial last one), with and without the table: the AVX2 bits.
TEST(MatMulQ32WideTiles, Avx512BitsEqualAvx2) {
  if (!HasIsa(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(21);
  for (const DType t : kTypes) {
    const MatMulTileFn avx2 = avx2::MatMulTileKernel(t), avx512 = avx512::MatMulTileKernel(t);
    ASSERT_EQ(avx2::MatMulTileTokens(t), kTokens);
    ASSERT_EQ(avx512::MatMulTileTokens(t), kTokens);
    for (const int64_t n_in : kWidths) {
      for (const bool extreme : {false, true}) {
        const Case c = MakeCase(t, 11, n_in, extreme, rng);
        const size_t stride = avx512::Q32ActTableBytes(n_in);
        // One byte past 64-byte alignment: the kernels must not assume an aligned scratch.
        std::vector<uint8_t> table(stride * kTokens + 65);
        uint8_t* tab = table.data() + (64 - reinterpret_cast<uintptr_t>(table.data()) % 64) + 1;
        for (int nt = 1; nt <= kTokens; ++nt) {
          avx512::FillQ32ActTable(DotPartner(t), c.x.data(), c.x_stride, nt, n_in, tab);
          for (int64_t r0 = 0; r0 <= 4; ++r0) {
            std::vector<float> ya(kTokens * c.n_rows, -7.0f), yb = ya, yc = ya;
            avx2(c.Tile(nt, 0, ya.data()), r0, c.n_rows);
            avx512(c.Tile(nt, 0, yb.data()), r0, c.n_rows);
            MatMulTile with_table = c.Tile(nt, 0, yc.data());
            with_table.xtab = tab;
            with_table.xtab_stride = stride;
            avx512(with_table, r0, c.n_rows);
            ASSERT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
                << DTypeName(t) << " n_in " << n_in << " extreme " << extreme << " nt " << nt
                << " rows " << r0 << "..11, no table";
            ASSERT_EQ(std::memcmp(ya.data(), yc.data(), ya.size() * sizeof(float)), 0)
                << DTypeName(t) << " n_in " << n_in << " extreme " << extreme << " nt " << nt
                << " rows " << r0 << "..11, table";
          }
        }
      }
    }
  }
}

// The wide tiles themselves, on every token count (Tile32 sends them only 7..16, and 8 of 9..11):
// both lane layouts, with the table and without (up to 64 blocks), against AVX2 bit for bit; a
// token's results are those of the token alone (batch invariance).
TEST(MatMulQ32WideTiles, EveryTokenCountAndTheTokenAlone) {
  if (!HasIsa(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(22);
  for (const DType t : kTypes) {
    const MatMulTileFn wide = avx512::MatMulTileKernel32Wide(t), avx2 = avx2::MatMulTileKernel(t);
    ASSERT_NE(wide, nullptr);
    for (const int64_t n_in : kWidths) {
      const Case c = MakeCase(t, 9, n_in, false, rng);
      const size_t stride = avx512::Q32ActTableBytes(n_in);
      std::vector<uint8_t> tab(stride * kTokens);
      std::vector<float> alone(kTokens * c.n_rows, -7.0f);
      for (int j = 0; j < kTokens; ++j) avx2(c.Tile(1, j, alone.data() + j * c.n_rows), 0, 9);
      for (int nt = 1; nt <= kTokens; ++nt) {
        for (const bool with_table : {false, true}) {
          if (!with_table && n_in / 32 > 64) continue;  // (Tile32WideTokens: 0)
          // Tokens [first, first + nt), the last tile of them ending at token 15.
          const int first = kTokens - nt;
          MatMulTile tile = c.Tile(nt, first, nullptr);
          std::vector<float> y(kTokens * c.n_rows, -7.0f);
          tile.y = y.data() + first * c.n_rows;
          if (with_table) {
            avx512::FillQ32ActTable(DotPartner(t), tile.xq, c.x_stride, nt, n_in, tab.data());
            tile.xtab = tab.data();
            tile.xtab_stride = stride;
          }
          wide(tile, 0, c.n_rows);
          for (int j = first; j < kTokens; ++j) {
            ASSERT_EQ(std::memcmp(&y[j * c.n_rows], &alone[j * c.n_rows], c.n_rows * sizeof(float)),
                      0)
                << DTypeName(t) << " n_in " << n_in << " nt " << nt << " table " << with_table
                << " token " << j;
          }
          for (int j = 0; j < first; ++j) ASSERT_EQ(y[j * c.n_rows], -7.0f);  // untouched
        }
      }
    }
  }
}

}  // namespace
}  // namespace gannet::cpu
