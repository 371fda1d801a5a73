// Shared pieces of the repacked-weight tests (repack_test.cc, repack_q8_0_test.cc,
// repack_rows16_test.cc): quantized weights with their interleaved copy, and the scalar twin of a
// matmul on them (the reference every kernel result is bounded against), the row ranges a tile
// test runs.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/repack.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::repack_test {

struct Weights {
  std::vector<uint8_t> file, inter;
};

// rows x cols values drawn from N(0, 0.05), quantized to t by the library's quantizer (the file
// layout), and their interleaved copy (RepackRows on `pool`).
inline Weights QuantizedWeights(DType t, int64_t rows, int64_t cols, std::mt19937& rng,
                                ThreadPool& pool) {
  std::normal_distribution<float> nd(0.0f, 0.05f);
  const size_t row_bytes = static_cast<size_t>(*RowBytes(t, cols));
  Weights w;
  w.file.resize(row_bytes * rows);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = nd(rng);
    EXPECT_TRUE(QuantizeRow(t, row.data(), w.file.data() + r * row_bytes, cols));
  }
  w.inter.assign(RepackedBytes(t, rows, cols), 0xAB);
  RepackRows(pool, t, w.file.data(), rows, cols, w.inter.data());
  return w;
}

// The scalar twin of y = W x for nt rows of x ([nt, n_in]): per (token j, row o) at j * n_out + o,
// ref = VecDotRef of the file row and the reference-quantized activation row (the dot partner of
// t), and abs_ref = sum_i |w_i x_i| over the dequantized values (the scale of a tolerance).
struct ScalarTwin {
  std::vector<float> ref, abs_ref;
};

inline ScalarTwin ScalarTwinOf(DType t, const std::vector<uint8_t>& w_file, int64_t n_out,
                               int64_t n_in, const std::vector<float>& x, int64_t nt) {
  const DType partner = DotPartner(t);
  const size_t row_bytes = w_file.size() / static_cast<size_t>(n_out);
  ScalarTwin s{std::vector<float>(nt * n_out), std::vector<float>(nt * n_out)};
  std::vector<uint8_t> xq(static_cast<size_t>(*RowBytes(partner, n_in)));
  std::vector<float> xd(n_in), wd(n_in);
  for (int64_t j = 0; j < nt; ++j) {
    matmul_ref::Quantizer(partner)(x.data() + j * n_in, xq.data(), n_in);
    DequantizeRow(partner, xq.data(), xd.data(), n_in);
    for (int64_t o = 0; o < n_out; ++o) {
      s.ref[j * n_out + o] = VecDotRef(t, w_file.data() + o * row_bytes, xq.data(), n_in);
      DequantizeRow(t, w_file.data() + o * row_bytes, wd.data(), n_in);
      double a = 0;
      for (int64_t i = 0; i < n_in; ++i) a += std::fabs(double{wd[i]} * xd[i]);
      s.abs_ref[j * n_out + o] = static_cast<float>(a);
    }
  }
  return s;
}

// Row ranges [r0, r1) of a matrix of `rows` rows for a tile kernel to compute: all of them, or the
// whole, the inner rows, from the second group of 16 on, and [3, 5).
inline std::vector<std::pair<int64_t, int64_t>> RowRanges(int64_t rows, bool all) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t r0 = 0; r0 < rows; ++r0) {
    for (int64_t r1 = r0 + 1; r1 <= rows; ++r1) {
      if (all || (r0 == 0 && r1 == rows) || (r0 == 1 && r1 == rows - 1) ||
          (r0 == 16 && r1 == rows) || (r0 == 3 && r1 == 5)) {
        ranges.push_back({r0, r1});
      }
    }
  }
  return ranges;
}

}  // namespace gannet::cpu::repack_test
