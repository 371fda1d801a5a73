// The weight copies CpuBackend::PrepareMatMulWeights makes in one block of huge-page memory
// (base/page_memory.h): matrices without an interleaved layout copied byte for byte, next to the
// interleaved ones. Each original is released once, in order; MatMul, Embed and ReadWeightRows
// then read only the copies (the originals are overwritten after the copy and the results must
// still be those of a backend that reads the untouched originals, bit for bit).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <vector>

#include "base/page_memory.h"
#include "base/thread_pool.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/ops.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

ThreadPool& Pool(int n_threads) {
  static ThreadPool* pools[4] = {};
  if (pools[n_threads] == nullptr) pools[n_threads] = new ThreadPool(n_threads);
  return *pools[n_threads];
}

TEST(PageMemory, HugePageBlocksAreAlignedZeroedAndWritable) {
  for (bool huge : {false, true}) {
    for (size_t bytes : {size_t{1}, size_t{5} << 20, (size_t{2} << 20) + 1}) {
      Result<PageMemory> m = PageMemory::Allocate(bytes, huge);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      ASSERT_NE(m.value().data(), nullptr);
      EXPECT_GE(m.value().size(), bytes);
      const auto at = reinterpret_cast<uintptr_t>(m.value().data());
      if (huge) {
        EXPECT_EQ(at % PageMemory::kHugePageBytes, 0u) << bytes;
        EXPECT_EQ(m.value().size() % PageMemory::kHugePageBytes, 0u) << bytes;
      }
      uint8_t* p = m.value().data();
      EXPECT_EQ(p[0], 0);
      EXPECT_EQ(p[bytes - 1], 0);
      p[0] = 1;
      p[m.value().size() - 1] = 2;
      PageMemory moved = std::move(m).value();
      EXPECT_EQ(moved.data(), p);
      EXPECT_EQ(moved.data()[moved.size() - 1], 2);
    }
  }
  Result<PageMemory> empty = PageMemory::Allocate(0, true);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty.value().size(), 0u);
}

struct Matrix {
  DType type;
  int64_t rows;
  std::vector<uint8_t> bytes;
  kernels::Weight weight() const {
    return {.type = type, .data = bytes.data(), .rows = rows, .cols = kCols};
  }
  static constexpr int64_t kCols = 512;
};

Matrix Quantized(DType type, int64_t rows, std::mt19937& rng) {
  Matrix m{.type = type, .rows = rows};
  const size_t rb = static_cast<size_t>(*RowBytes(type, Matrix::kCols));
  m.bytes.resize(rb * static_cast<size_t>(rows));
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> row(Matrix::kCols);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = nd(rng);
    EXPECT_TRUE(QuantizeRow(type, row.data(), m.bytes.data() + r * rb, Matrix::kCols));
  }
  return m;
}

// y [nt, w.rows] = x . w^T through `b`.
std::vector<float> Product(kernels::Backend& b, const kernels::Weight& w,
                           const std::vector<float>& x, int64_t nt) {
  std::vector<float> y(static_cast<size_t>(nt * w.rows), -1.0f);
  const kernels::MatMulOutput out{.w = w, .y = y.data(), .y_stride = w.rows};
  kernels::MatMulArgs a{.x = x.data(),
                        .x_stride = Matrix::kCols,
                        .n_in = Matrix::kCols,
                        .n_tokens = nt,
                        .outputs = {&out, 1}};
  std::vector<uint8_t> scratch(b.MatMulScratchBytes(a) + 64);
  a.scratch = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
  b.MatMul(a);
  return y;
}

TEST(WeightCopy, CopiesEveryMatrixAndReadsOnlyTheCopies) {
  std::mt19937 rng(7);
  // Q4_0 and Q5_0: no interleaved layout; Q8_0: interleaved on AVX-512 only; Q4_K: interleaved
  // on the SIMD targets. 9000 Q4_0 rows of 288 bytes (2.5 MiB) span huge pages; 37 and 7 rows
  // end in a partial group.
  const std::vector<Matrix> originals = {
      Quantized(DType::kQ4_0, 9000, rng), Quantized(DType::kQ8_0, 37, rng),
      Quantized(DType::kQ4_K, 7, rng), Quantized(DType::kQ5_0, 33, rng)};
  std::vector<float> x(3 * Matrix::kCols);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  const std::vector<int32_t> rows = {0, 8999, 4321, 17};

  Isa isas[3];
  const int n_isas = AvailableIsas(isas);
  for (int k = 0; k < n_isas; ++k) {
    for (bool huge : {false, true}) {
      const Isa isa = isas[k];
      std::vector<Matrix> ms = originals;
      std::vector<kernels::Weight> weights;
      for (const Matrix& m : ms) weights.push_back(m.weight());
      weights.push_back(ms[0].weight());  // the same matrix twice (a tied table)
      CpuBackend plain(Pool(2), isa, /*repack_weights=*/false);
      CpuBackend copied(Pool(2), isa, CpuBackendOptions{.huge_pages = huge});
      // The file-layout results first, while the originals hold their bytes.
      std::vector<std::vector<float>> want;
      for (const Matrix& m : ms) want.push_back(Product(plain, m.weight(), x, 3));
      std::vector<float> want_embed(rows.size() * Matrix::kCols);
      plain.Embed(ms[0].weight(), rows, 0.5f, want_embed.data());

      std::vector<std::span<const uint8_t>> released;
      EXPECT_EQ(copied.PrepareMatMulWeights(
                    weights, [&](std::span<const uint8_t> p) { released.push_back(p); }),
                std::vector<bool>(weights.size(), true));
      size_t i = 0;
      for (const Matrix& m : ms) {  // each original once, in order, in slices
        const uint8_t* at = m.bytes.data();
        while (i < released.size() && released[i].data() == at) at += released[i++].size();
        EXPECT_EQ(at, m.bytes.data() + m.bytes.size()) << DTypeName(m.type);
      }
      EXPECT_EQ(i, released.size());
      // What the caller may do with released memory: the results must not change.
      for (Matrix& m : ms) std::memset(m.bytes.data(), 0x5A, m.bytes.size());

      for (size_t j = 0; j < ms.size(); ++j) {
        const std::vector<float> got = Product(copied, ms[j].weight(), x, 3);
        ASSERT_EQ(std::memcmp(got.data(), want[j].data(), got.size() * sizeof(float)), 0)
            << IsaName(isa) << " " << DTypeName(ms[j].type) << " huge " << huge;
      }
      std::vector<float> embed(want_embed.size());
      copied.Embed(ms[0].weight(), rows, 0.5f, embed.data());
      EXPECT_EQ(std::memcmp(embed.data(), want_embed.data(), embed.size() * sizeof(float)), 0);
      for (size_t j = 0; j < ms.size(); ++j) {
        const size_t rb = ms[j].bytes.size() / static_cast<size_t>(ms[j].rows);
        const std::vector<int32_t> some = {0, static_cast<int32_t>(ms[j].rows - 1)};
        std::vector<uint8_t> got(2 * rb);
        copied.ReadWeightRows(ms[j].weight(), some, got.data());
        EXPECT_EQ(std::memcmp(got.data(), originals[j].bytes.data(), rb), 0);
        EXPECT_EQ(
            std::memcmp(got.data() + rb, originals[j].bytes.data() + (ms[j].rows - 1) * rb, rb), 0);
      }
      // A sharing backend reads the same copies.
      std::unique_ptr<kernels::Backend> sharing = copied.NewSharingWeights();
      EXPECT_EQ(sharing->PrepareMatMulWeights(weights, {}),
                std::vector<bool>(weights.size(), true));
      EXPECT_EQ(sharing->prepared_weight_bytes(), 0u);
      const std::vector<float> got = Product(*sharing, ms[0].weight(), x, 3);
      EXPECT_EQ(std::memcmp(got.data(), want[0].data(), got.size() * sizeof(float)), 0);
    }
  }
}

// With the other copies off, only the interleaved matrices are copied (the rest keep the file
// layout, as before the copies existed).
TEST(WeightCopy, OtherCopiesOffCopiesOnlyInterleavedMatrices) {
  std::mt19937 rng(8);
  const Matrix q4_0 = Quantized(DType::kQ4_0, 16, rng);
  CpuBackend b(Pool(2), Isa::kScalar, CpuBackendOptions{.copy_other_weights = false});
  const kernels::Weight w[1] = {q4_0.weight()};
  EXPECT_EQ(b.PrepareMatMulWeights(w, {}), std::vector<bool>{false});
  CpuBackend c(Pool(2), Isa::kScalar);
  EXPECT_EQ(c.PrepareMatMulWeights(w, {}), std::vector<bool>{true});
  EXPECT_EQ(c.prepared_weight_bytes(), q4_0.bytes.size());
}

}  // namespace
}  // namespace gannet::cpu
