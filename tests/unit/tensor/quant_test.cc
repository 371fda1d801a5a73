// tensor/quant against the gguf package's numpy code (golden files written by
// tools/quant_golden.py), plus round-trip error bounds and dot-product consistency.
#include "tensor/quant/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tensor/fp16.h"

namespace gannet {
namespace {

struct Golden {
  DType type;
  uint32_t kind = 0;  // 0: bytes -> values; 1: values -> bytes
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

bool ReadGolden(const std::string& name, Golden* g) {
  const std::string path = std::string(GANNET_FIXTURES_DIR) + "/quant/" + name + ".bin";
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  char magic[4];
  uint32_t hdr[5];
  f.read(magic, 4);
  f.read(reinterpret_cast<char*>(hdr), sizeof hdr);
  if (!f || std::memcmp(magic, "GQG1", 4) != 0 || hdr[0] != 1) return false;
  g->type = static_cast<DType>(hdr[1]);
  g->kind = hdr[2];
  g->values.resize(hdr[3]);
  g->bytes.resize(hdr[4]);
  auto read_values = [&] { f.read(reinterpret_cast<char*>(g->values.data()), hdr[3] * 4); };
  auto read_bytes = [&] { f.read(reinterpret_cast<char*>(g->bytes.data()), hdr[4]); };
  if (g->kind == 0) {
    read_bytes();
    read_values();
  } else {
    read_values();
    read_bytes();
  }
  return static_cast<bool>(f) && RowBytes(g->type, hdr[3]) == static_cast<int64_t>(hdr[4]);
}

bool SameFloat(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return F32ToBits(a) == F32ToBits(b);
}

class DequantGolden : public testing::TestWithParam<const char*> {};

TEST_P(DequantGolden, BitExactWithGguf) {
  Golden g;
  ASSERT_TRUE(ReadGolden(std::string("dequant_") + GetParam(), &g)) << GetParam();
  ASSERT_EQ(g.kind, 0u);
  std::vector<float> out(g.values.size());
  DequantizeRow(g.type, g.bytes.data(), out.data(), static_cast<int64_t>(out.size()));
  int bad = 0;
  for (size_t i = 0; i < out.size() && bad < 5; ++i) {
    if (!SameFloat(out[i], g.values[i])) {
      ++bad;
      ADD_FAILURE() << GetParam() << " value " << i << ": got " << out[i] << " want "
                    << g.values[i];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, DequantGolden,
                         testing::Values("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                                         "q4_k", "q5_k", "q6_k"));

class QuantGolden : public testing::TestWithParam<const char*> {};

TEST_P(QuantGolden, BitExactWithGguf) {
  Golden g;
  ASSERT_TRUE(ReadGolden(std::string("quant_") + GetParam(), &g)) << GetParam();
  ASSERT_EQ(g.kind, 1u);
  std::vector<uint8_t> out(g.bytes.size(), 0xAA);
  ASSERT_TRUE(
      QuantizeRow(g.type, g.values.data(), out.data(), static_cast<int64_t>(g.values.size())));
  const int64_t bs = Traits(g.type).block_size, ts = Traits(g.type).type_size;
  int bad = 0;
  for (size_t i = 0; i < out.size() && bad < 5; ++i) {
    if (out[i] != g.bytes[i]) {
      ++bad;
      ADD_FAILURE() << GetParam() << " byte " << i << " (value " << i / ts * bs << "+): got "
                    << int{out[i]} << " want " << int{g.bytes[i]};
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, QuantGolden,
                         testing::Values("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"));

std::vector<float> RandomRow(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  // Uneven magnitudes across blocks and a few outliers, as in real weights.
  for (int64_t i = 0; i < n; i += 256) {
    const float s = std::exp2(static_cast<float>(static_cast<int>(rng() % 7)) - 3.0f);
    for (int64_t j = i; j < i + 256 && j < n; ++j) x[j] *= s;
  }
  for (int k = 0; k < 4; ++k) x[rng() % n] *= 8.0f;
  return x;
}

std::vector<uint8_t> Quantize(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(*RowBytes(t, static_cast<int64_t>(x.size())));
  EXPECT_TRUE(QuantizeRow(t, x.data(), q.data(), static_cast<int64_t>(x.size())));
  return q;
}

std::vector<float> Dequantize(DType t, const void* q, int64_t n) {
  std::vector<float> y(n);
  DequantizeRow(t, q, y.data(), n);
  return y;
}

double RelRms(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += (double{x[i]} - y[i]) * (double{x[i]} - y[i]);
    s += double{x[i]} * x[i];
  }
  return std::sqrt(e / s);
}

struct ErrorBound {
  DType type;
  double max_rel_rms;
};

// Measured on this data (see the printed values); the bounds leave ~15% headroom.
const ErrorBound kBounds[] = {
    {DType::kF32, 0.0},    {DType::kF16, 0.00025}, {DType::kBF16, 0.0019}, {DType::kQ8_0, 0.0062},
    {DType::kQ6_K, 0.021}, {DType::kQ5_0, 0.05},   {DType::kQ5_1, 0.044},  {DType::kQ5_K, 0.042},
    {DType::kQ4_0, 0.10},  {DType::kQ4_1, 0.091},  {DType::kQ4_K, 0.082},
};

TEST(Quant, RoundTripErrorWithinBounds) {
  std::mt19937 rng(1);
  const int64_t n = 256 * 128;
  const std::vector<float> x = RandomRow(rng, n);
  for (const ErrorBound& b : kBounds) {
    const auto q = Quantize(b.type, x);
    const double err = RelRms(x, Dequantize(b.type, q.data(), n));
    std::printf("  %-5s rms(error) / rms(x) = %.5f (bound %.4f)\n",
                std::string(DTypeName(b.type)).c_str(), err, b.max_rel_rms);
    EXPECT_LE(err, b.max_rel_rms) << DTypeName(b.type);
  }
}

TEST(Quant, ZeroAndConstantRows) {
  for (const ErrorBound& b : kBounds) {
    const std::vector<float> zero(256, 0.0f);
    const auto q = Quantize(b.type, zero);
    for (float v : Dequantize(b.type, q.data(), 256)) ASSERT_EQ(v, 0.0f) << DTypeName(b.type);
    const std::vector<float> c(256, -0.5f);
    const auto qc = Quantize(b.type, c);
    for (float v : Dequantize(b.type, qc.data(), 256)) {
      ASSERT_NEAR(v, -0.5f, 0.5f * 0.01f) << DTypeName(b.type);
    }
  }
}

TEST(Quant, UnsupportedTargets) {
  float x[256] = {};
  uint8_t out[512];
  EXPECT_FALSE(QuantizeRow(DType::kQ2_K, x, out, 256));
  EXPECT_FALSE(QuantizeRow(DType::kQ8_K, x, out, 256));  // activations go through QuantizeRowQ8_K
  EXPECT_FALSE(QuantizeRow(DType::kQ4_0, x, out, 31));   // not a block multiple
}

TEST(Quant, ActivationQuantizers) {
  std::mt19937 rng(2);
  const int64_t n = 1024;
  std::vector<float> x = RandomRow(rng, n);
  x[5] = 0.5f * x[0];  // nothing special; ties are covered by the Q8_0 golden (same rounding)
  std::vector<BlockQ8_0> q0(n / 32);
  std::vector<BlockQ8_1> q1(n / 32);
  std::vector<BlockQ8_K> qk(n / 256);
  QuantizeRowQ8_0(x.data(), q0.data(), n);
  QuantizeRowQ8_1(x.data(), q1.data(), n);
  QuantizeRowQ8_K(x.data(), qk.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    EXPECT_EQ(q0[b].d, q1[b].d);
    EXPECT_EQ(std::memcmp(q0[b].qs, q1[b].qs, 32), 0);
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += q1[b].qs[j];
    // s is rounded from sum * d with the unrounded f32 d, so only near the f16-rounded product.
    const float s_want = static_cast<float>(sum) * F16ToF32(q1[b].d);
    EXPECT_NEAR(F16ToF32(q1[b].s), s_want, 1e-3f * std::fabs(s_want) + 1e-7f);
  }
  for (int64_t b = 0; b < n / 256; ++b) {
    int amax_code = 0;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) {
        sum += qk[b].qs[16 * g + j];
        amax_code = std::max(amax_code, std::abs(int{qk[b].qs[16 * g + j]}));
      }
      EXPECT_EQ(qk[b].bsums[g], sum);
    }
    EXPECT_EQ(amax_code, 127);
  }
  // Measured 0.0064 (Q8_0, Q8_1) and 0.0099 (Q8_K: one scale per 256, outliers included).
  EXPECT_LT(RelRms(x, Dequantize(DType::kQ8_0, q0.data(), n)), 0.0075);
  EXPECT_LT(RelRms(x, Dequantize(DType::kQ8_1, q1.data(), n)), 0.0075);
  EXPECT_LT(RelRms(x, Dequantize(DType::kQ8_K, qk.data(), n)), 0.0115);

  // The extreme value maps to -127 exactly and a zero block stays zero (bsums too).
  std::vector<float> z(256, 0.0f);
  z[17] = 3.0f;
  BlockQ8_K k;
  std::memset(&k, 0x55, sizeof k);
  QuantizeRowQ8_K(z.data(), &k, 256);
  EXPECT_EQ(k.qs[17], -127);
  EXPECT_LT(k.d, 0.0f);
  z[17] = 0.0f;
  QuantizeRowQ8_K(z.data(), &k, 256);
  EXPECT_EQ(k.d, 0.0f);
  for (int g = 0; g < 16; ++g) EXPECT_EQ(k.bsums[g], 0);
}

TEST(Quant, DotPartners) {
  EXPECT_EQ(DotPartner(DType::kQ4_0), DType::kQ8_0);
  EXPECT_EQ(DotPartner(DType::kQ5_0), DType::kQ8_0);
  EXPECT_EQ(DotPartner(DType::kQ8_0), DType::kQ8_0);
  EXPECT_EQ(DotPartner(DType::kQ4_1), DType::kQ8_1);
  EXPECT_EQ(DotPartner(DType::kQ5_1), DType::kQ8_1);
  EXPECT_EQ(DotPartner(DType::kQ4_K), DType::kQ8_K);
  EXPECT_EQ(DotPartner(DType::kQ5_K), DType::kQ8_K);
  EXPECT_EQ(DotPartner(DType::kQ6_K), DType::kQ8_K);
  EXPECT_EQ(DotPartner(DType::kF32), DType::kF32);
  EXPECT_EQ(DotPartner(DType::kF16), DType::kF32);
  EXPECT_EQ(DotPartner(DType::kBF16), DType::kF32);
}

// Quantizes x to `partner` (f32 stays as is).
std::vector<uint8_t> QuantizeActivation(DType partner, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(*RowBytes(partner, n));
  switch (partner) {
    case DType::kQ8_0:
      QuantizeRowQ8_0(x.data(), reinterpret_cast<BlockQ8_0*>(q.data()), n);
      break;
    case DType::kQ8_1:
      QuantizeRowQ8_1(x.data(), reinterpret_cast<BlockQ8_1*>(q.data()), n);
      break;
    case DType::kQ8_K:
      QuantizeRowQ8_K(x.data(), reinterpret_cast<BlockQ8_K*>(q.data()), n);
      break;
    default:
      std::memcpy(q.data(), x.data(), q.size());
      break;
  }
  return q;
}

TEST(Quant, VecDotRefMatchesDequantizedDot) {
  std::mt19937 rng(3);
  for (const ErrorBound& b : kBounds) {
    for (int64_t n : {256, 768, 4096}) {
      const auto w = Quantize(b.type, RandomRow(rng, n));
      const DType partner = DotPartner(b.type);
      const auto xq = QuantizeActivation(partner, RandomRow(rng, n));
      const auto wd = Dequantize(b.type, w.data(), n);
      const auto xd = Dequantize(partner, xq.data(), n);
      double dot = 0, absdot = 0;
      for (int64_t i = 0; i < n; ++i) {
        dot += double{wd[i]} * xd[i];
        absdot += std::fabs(double{wd[i]} * xd[i]);
      }
      if (partner == DType::kQ8_1) {
        // The min term uses the activation's stored s = f16(d * sum q), as ggml does, not
        // the exact d * sum q: add that rounding to the expectation.
        const size_t wbytes = Traits(b.type).type_size;
        for (int64_t blk = 0; blk < n / 32; ++blk) {
          BlockQ8_1 xb;
          std::memcpy(&xb, xq.data() + blk * sizeof(BlockQ8_1), sizeof xb);
          uint16_t m16;  // m follows d in both Q4_1 and Q5_1
          std::memcpy(&m16, w.data() + blk * wbytes + 2, 2);
          int sum = 0;
          for (int j = 0; j < 32; ++j) sum += xb.qs[j];
          dot += double{F16ToF32(m16)} * (double{F16ToF32(xb.s)} - double{F16ToF32(xb.d)} * sum);
        }
      }
      const float got = VecDotRef(b.type, w.data(), xq.data(), n);
      EXPECT_NEAR(got, dot, 2e-6 * absdot) << DTypeName(b.type) << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace gannet
