#include "tensor/fp16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

namespace gannet {
namespace {

// Independent decoding of a binary16 value with ldexp.
double HalfValue(uint16_t h) {
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(Fp16, AllHalfValuesDecodeExactlyAndRoundTrip) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = static_cast<uint16_t>(i);
    const float f = F16ToF32(h);
    const double want = HalfValue(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << i;
      ASSERT_TRUE(std::isnan(F16ToF32(F32ToF16(f)))) << i;  // NaN stays NaN
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), want) << i;
    ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << i;
    ASSERT_EQ(F32ToF16(f), h) << i;
  }
}

// Between two neighbouring halves, the midpoint goes to the even one and anything off the
// midpoint by one f32 ulp goes to the nearer one.
TEST(Fp16, MidpointsRoundToNearestEven) {
  for (uint32_t i = 0; i < 0x7BFF; ++i) {
    const uint16_t a = static_cast<uint16_t>(i), b = static_cast<uint16_t>(i + 1);
    const float mid = static_cast<float>((HalfValue(a) + HalfValue(b)) / 2);  // exact in f32
    const uint16_t even = (a & 1) ? b : a;
    ASSERT_EQ(F32ToF16(mid), even) << i;
    ASSERT_EQ(F32ToF16(-mid), even | 0x8000) << i;
    ASSERT_EQ(F32ToF16(std::nextafter(mid, 0.0f)), a) << i;
    ASSERT_EQ(F32ToF16(std::nextafter(mid, 1e9f)), b) << i;
  }
}

TEST(Fp16, KnownRoundings) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65519.99f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);  // the tie above the largest half overflows
  EXPECT_EQ(F32ToF16(1e10f), 0x7C00);
  EXPECT_EQ(F32ToF16(-INFINITY), 0xFC00);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even zero
  EXPECT_EQ(F32ToF16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units -> 2
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(1e-30f), 0x0000);
  EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(NAN))));
}

TEST(Bf16, RoundTripAndRounding) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t b = static_cast<uint16_t>(i);
    const float f = BF16ToF32(b);
    ASSERT_EQ(F32ToBits(f), i << 16);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(BF16ToF32(F32ToBF16(f))));
    } else {
      ASSERT_EQ(F32ToBF16(f), b) << i;
    }
  }
  EXPECT_EQ(F32ToBF16(BitsToF32(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(F32ToBF16(BitsToF32(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(F32ToBF16(BitsToF32(0x3F808001u)), 0x3F81);
  EXPECT_EQ(F32ToBF16(BitsToF32(0x7F7FFFFFu)), 0x7F80);  // max float rounds to Inf
  EXPECT_EQ(F32ToBF16(BitsToF32(0x7F800001u)), 0x7FC0);  // signalling NaN comes back quiet
}

}  // namespace
}  // namespace gannet
