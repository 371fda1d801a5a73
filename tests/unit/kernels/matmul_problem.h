// The matmul conformance tests' shared problem: random weights of a type, activations, and the
// scalar twin's and the f32 dot's results (MakeProblem); MatMul run on one ISA with a padded
// output (RunMatMul); shared thread pools and the ISA check.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::matmul_testing {

struct Shape {
  int64_t n_out, n_in, n_tokens;
};

// n_in values are multiples of the block size (32 or 256; float types take any width).
inline std::vector<Shape> ShapesFor(DType t) {
  const int64_t bs = Traits(t).block_size;
  if (bs == 1)
    return {{1, 37, 1}, {7, 100, 2}, {33, 513, 5}, {255, 256, 17}, {4097, 300, 1}, {33, 2048, 17}};
  if (bs == 32)
    return {{1, 32, 1}, {7, 96, 2}, {33, 512, 5}, {255, 256, 17}, {4097, 1056, 1}, {33, 2048, 17}};
  // 8448 inputs: 33 super-blocks, past the 32 a K-quant tile lays out at once.
  return {{1, 256, 1},    {7, 512, 2}, {33, 512, 5}, {255, 256, 17}, {4097, 768, 1},
          {33, 2304, 17}, {5, 256, 3}, {3, 768, 4},  {9, 8448, 6}};
}

inline std::vector<float> RandomValues(std::mt19937& rng, int64_t n, float scale) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

struct Problem {
  DType wtype;
  Shape s;
  std::vector<uint8_t> w;  // [n_out] rows in wtype
  size_t w_row_bytes = 0;
  int64_t x_stride = 0;
  std::vector<float> x;        // [n_tokens, x_stride]
  std::vector<float> y_ref;    // [n_tokens, n_out]: VecDotRef on reference-quantized rows
  std::vector<float> abs_ref;  // [n_tokens, n_out]: sum |w| |x_quantized|, the scale of rounding
  // [n_tokens, n_out]: a bound on the sum of |terms| the kernels add: abs_ref, or for types with
  // a block min m (Q4_1, Q5_1), whose terms are d q x and m s, sum (|w| + 2.001 |m|) |x_quantized|
  // (|d q| = |w - m|, and the block's s is within 2^-11 of sum x_quantized).
  std::vector<float> abs_terms;
  std::vector<double> y_f32;  // [n_tokens, n_out]: dequantized weights . f32 activations
  std::vector<double> abs_f32;
};

inline Problem MakeProblem(DType wtype, Shape s, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p;
  p.wtype = wtype;
  p.s = s;
  p.w_row_bytes = static_cast<size_t>(*RowBytes(wtype, s.n_in));
  p.w.resize(p.w_row_bytes * s.n_out);
  std::vector<float> wf(s.n_out * s.n_in);
  for (int64_t o = 0; o < s.n_out; ++o) {
    const auto row = RandomValues(rng, s.n_in, 0.05f);
    EXPECT_TRUE(QuantizeRow(wtype, row.data(), p.w.data() + o * p.w_row_bytes, s.n_in));
    DequantizeRow(wtype, p.w.data() + o * p.w_row_bytes, wf.data() + o * s.n_in, s.n_in);
  }
  p.x_stride = s.n_in + 3;
  p.x.assign(s.n_tokens * p.x_stride, std::nanf(""));  // the gaps must never be read
  for (int64_t t = 0; t < s.n_tokens; ++t) {
    const auto row = RandomValues(rng, s.n_in, 1.0f + static_cast<float>(t));
    std::memcpy(p.x.data() + t * p.x_stride, row.data(), s.n_in * sizeof(float));
  }
  const DType partner = DotPartner(wtype);
  std::vector<uint8_t> xq(partner == DType::kF32 ? s.n_in * 4 : *RowBytes(partner, s.n_in));
  std::vector<float> xd(s.n_in);
  const QuantizeActFn quant = matmul_ref::Quantizer(partner);
  p.y_ref.resize(s.n_tokens * s.n_out);
  p.abs_ref.resize(s.n_tokens * s.n_out);
  p.abs_terms.resize(s.n_tokens * s.n_out);
  const bool has_min = wtype == DType::kQ4_1 || wtype == DType::kQ5_1;
  p.y_f32.resize(s.n_tokens * s.n_out);
  p.abs_f32.resize(s.n_tokens * s.n_out);
  for (int64_t t = 0; t < s.n_tokens; ++t) {
    const float* xt = p.x.data() + t * p.x_stride;
    if (quant != nullptr) {
      quant(xt, xq.data(), s.n_in);
      DequantizeRow(partner, xq.data(), xd.data(), s.n_in);
    } else {
      std::memcpy(xq.data(), xt, s.n_in * sizeof(float));
      std::memcpy(xd.data(), xt, s.n_in * sizeof(float));
    }
    for (int64_t o = 0; o < s.n_out; ++o) {
      const float* wr = wf.data() + o * s.n_in;
      double a_ref = 0, dot = 0, a_f32 = 0, a_terms = 0;
      const size_t block_bytes = has_min ? p.w_row_bytes / static_cast<size_t>(s.n_in / 32) : 0;
      for (int64_t i = 0; i < s.n_in; ++i) {
        a_ref += std::fabs(double{wr[i]} * xd[i]);
        if (has_min) {  // both block layouts start with the f16 d and m
          uint16_t m;
          std::memcpy(&m, p.w.data() + o * p.w_row_bytes + (i / 32) * block_bytes + 2, sizeof m);
          a_terms += (std::fabs(double{wr[i]}) + 2.001 * std::fabs(double{F16ToF32(m)})) *
                     std::fabs(double{xd[i]});
        }
        dot += double{wr[i]} * xt[i];
        a_f32 += std::fabs(double{wr[i]} * xt[i]);
      }
      p.y_ref[t * s.n_out + o] =
          VecDotRef(wtype, p.w.data() + o * p.w_row_bytes, xq.data(), s.n_in);
      p.abs_ref[t * s.n_out + o] = static_cast<float>(a_ref);
      p.abs_terms[t * s.n_out + o] = static_cast<float>(has_min ? a_terms : a_ref);
      p.y_f32[t * s.n_out + o] = dot;
      p.abs_f32[t * s.n_out + o] = a_f32;
    }
  }
  return p;
}

// Runs MatMul with a padded output ([n_tokens, n_out + 5]); checks the padding stays untouched.
inline std::vector<float> RunMatMul(const Problem& p, ThreadPool& pool, Isa isa) {
  const Shape& s = p.s;
  const int64_t y_stride = s.n_out + 5;
  std::vector<float> y(s.n_tokens * y_stride, -12345.0f);
  std::vector<uint8_t> scratch(MatMulScratchBytes(p.wtype, s.n_in, s.n_tokens) + 1);
  MatMulArgs a;
  a.wtype = p.wtype;
  a.w = p.w.data();
  a.n_out = s.n_out;
  a.n_in = s.n_in;
  a.x = p.x.data();
  a.x_stride = p.x_stride;
  a.n_tokens = s.n_tokens;
  a.y = y.data();
  a.y_stride = y_stride;
  a.scratch = scratch.data();
  MatMul(pool, a, isa);
  std::vector<float> out(s.n_tokens * s.n_out);
  for (int64_t t = 0; t < s.n_tokens; ++t) {
    for (int64_t o = 0; o < y_stride; ++o) {
      if (o < s.n_out) {
        out[t * s.n_out + o] = y[t * y_stride + o];
      } else {
        EXPECT_EQ(y[t * y_stride + o], -12345.0f) << "padding written at token " << t;
      }
    }
  }
  return out;
}

// Pools shared by all tests (workers are started once per process).
inline ThreadPool& Pool(int n_threads) {
  static ThreadPool* pools[4] = {};
  if (pools[n_threads] == nullptr) pools[n_threads] = new ThreadPool(n_threads);
  return *pools[n_threads];
}

inline bool HasIsa(Isa isa) {
  Isa isas[3];
  const int n_isas = AvailableIsas(isas);
  for (int k = 0; k < n_isas; ++k) {
    if (isas[k] == isa) return true;
  }
  return false;
}

}  // namespace gannet::cpu::matmul_testing
