#include "tensor/dtype.h"

#include <array>
#include <cctype>
#include <limits>

#include "base/status.h"

namespace gannet {
namespace {

constexpr std::array kTraits = {
    DTypeTraits{DType::kF32, "f32", 1, 4, false, true},
    DTypeTraits{DType::kF16, "f16", 1, 2, false, true},
    DTypeTraits{DType::kQ4_0, "q4_0", 32, 18, true, true},
    DTypeTraits{DType::kQ4_1, "q4_1", 32, 20, true, true},
    DTypeTraits{DType::kQ5_0, "q5_0", 32, 22, true, true},
    DTypeTraits{DType::kQ5_1, "q5_1", 32, 24, true, true},
    DTypeTraits{DType::kQ8_0, "q8_0", 32, 34, true, true},
    DTypeTraits{DType::kQ8_1, "q8_1", 32, 36, true, false},
    DTypeTraits{DType::kQ2_K, "q2_K", 256, 84, true, false},
    DTypeTraits{DType::kQ3_K, "q3_K", 256, 110, true, false},
    DTypeTraits{DType::kQ4_K, "q4_K", 256, 144, true, true},
    DTypeTraits{DType::kQ5_K, "q5_K", 256, 176, true, true},
    DTypeTraits{DType::kQ6_K, "q6_K", 256, 210, true, true},
    DTypeTraits{DType::kQ8_K, "q8_K", 256, 292, true, false},
    DTypeTraits{DType::kBF16, "bf16", 1, 2, false, true},
};

}  // namespace

const DTypeTraits* FindDType(int32_t ggml_type) {
  for (const auto& t : kTraits) {
    if (static_cast<int32_t>(t.type) == ggml_type) return &t;
  }
  return nullptr;
}

const DTypeTraits& Traits(DType t) {
  const DTypeTraits* p = FindDType(static_cast<int32_t>(t));
  GANNET_CHECK(p != nullptr);
  return *p;
}

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const auto& t : kTraits) {
    if (t.name.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < name.size() && eq; ++i) {
      eq = std::tolower(static_cast<unsigned char>(name[i])) ==
           std::tolower(static_cast<unsigned char>(t.name[i]));
    }
    if (eq) return t.type;
  }
  return std::nullopt;
}

std::optional<int64_t> RowBytes(DType t, int64_t n) {
  const DTypeTraits& tr = Traits(t);
  if (n < 0 || n % tr.block_size != 0) return std::nullopt;
  const int64_t blocks = n / tr.block_size;
  if (blocks > std::numeric_limits<int64_t>::max() / tr.type_size) return std::nullopt;
  return blocks * tr.type_size;
}

}  // namespace gannet
