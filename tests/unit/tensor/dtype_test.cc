#include "tensor/dtype.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace gannet {
namespace {

TEST(DType, TraitsMatchGgml) {
  struct Want {
    DType t;
    const char* name;
    int64_t block, size;
    bool quantized, load;
  };
  const Want wants[] = {
      {DType::kF32, "f32", 1, 4, false, true},       {DType::kF16, "f16", 1, 2, false, true},
      {DType::kBF16, "bf16", 1, 2, false, true},     {DType::kQ4_0, "q4_0", 32, 18, true, true},
      {DType::kQ4_1, "q4_1", 32, 20, true, true},    {DType::kQ5_0, "q5_0", 32, 22, true, true},
      {DType::kQ5_1, "q5_1", 32, 24, true, true},    {DType::kQ8_0, "q8_0", 32, 34, true, true},
      {DType::kQ8_1, "q8_1", 32, 36, true, false},   {DType::kQ4_K, "q4_K", 256, 144, true, true},
      {DType::kQ5_K, "q5_K", 256, 176, true, true},  {DType::kQ6_K, "q6_K", 256, 210, true, true},
      {DType::kQ8_K, "q8_K", 256, 292, true, false},
  };
  for (const Want& w : wants) {
    const DTypeTraits& tr = Traits(w.t);
    EXPECT_EQ(tr.type, w.t);
    EXPECT_EQ(tr.name, w.name);
    EXPECT_EQ(DTypeName(w.t), w.name);
    EXPECT_EQ(tr.block_size, w.block) << w.name;
    EXPECT_EQ(tr.type_size, w.size) << w.name;
    EXPECT_EQ(tr.is_quantized, w.quantized) << w.name;
    EXPECT_EQ(tr.can_load, w.load) << w.name;
    const DTypeTraits* found = FindDType(static_cast<int32_t>(w.t));
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found, &tr);
  }
}

TEST(DType, UnknownCodes) {
  for (int32_t code : {-1, 4, 5, 16, 29, 31, 1000}) EXPECT_EQ(FindDType(code), nullptr) << code;
}

TEST(DType, FromNameIsCaseInsensitive) {
  EXPECT_EQ(DTypeFromName("q4_K"), DType::kQ4_K);
  EXPECT_EQ(DTypeFromName("Q4_K"), DType::kQ4_K);
  EXPECT_EQ(DTypeFromName("q8_0"), DType::kQ8_0);
  EXPECT_EQ(DTypeFromName("BF16"), DType::kBF16);
  EXPECT_EQ(DTypeFromName("f32"), DType::kF32);
  EXPECT_FALSE(DTypeFromName("q4").has_value());
  EXPECT_FALSE(DTypeFromName("").has_value());
  EXPECT_FALSE(DTypeFromName("q4_k_m").has_value());
}

TEST(DType, RowBytes) {
  EXPECT_EQ(RowBytes(DType::kF32, 10), 40);
  EXPECT_EQ(RowBytes(DType::kF16, 7), 14);
  EXPECT_EQ(RowBytes(DType::kQ8_0, 64), 68);
  EXPECT_EQ(RowBytes(DType::kQ4_K, 512), 288);
  EXPECT_EQ(RowBytes(DType::kQ6_K, 256), 210);
  EXPECT_EQ(RowBytes(DType::kQ4_0, 0), 0);
}

TEST(DType, RowBytesErrors) {
  EXPECT_FALSE(RowBytes(DType::kQ4_0, 33).has_value());  // not a block multiple
  EXPECT_FALSE(RowBytes(DType::kQ4_K, 32).has_value());
  EXPECT_FALSE(RowBytes(DType::kF32, -1).has_value());  // negative
  // Only the float types store more bytes than values, so only they can overflow.
  EXPECT_FALSE(RowBytes(DType::kF16, std::numeric_limits<int64_t>::max() / 2 + 1).has_value());
  EXPECT_EQ(RowBytes(DType::kF16, std::numeric_limits<int64_t>::max() / 2),
            std::numeric_limits<int64_t>::max() / 2 * 2);
  EXPECT_FALSE(RowBytes(DType::kF32, std::numeric_limits<int64_t>::max()).has_value());
}

}  // namespace
}  // namespace gannet
