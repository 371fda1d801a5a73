// Element types of tensors: plain floats and ggml's block-quantized layouts.
// Codes are ggml's type ids, so a GGUF tensor's type field maps to DType directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gannet {

enum class DType : int32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,  // activations only (dot partner of Q4_1 / Q5_1)
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,  // activations only (dot partner of the K-quants)
  kBF16 = 30,
};

struct DTypeTraits {
  DType type;
  std::string_view name;  // ggml's spelling: "f32", "q4_K", ...
  int64_t block_size;     // values per block (1 for plain floats)
  int64_t type_size;      // bytes per block
  bool is_quantized;
  bool can_load;  // gannet can compute with a weight of this type
};

// nullptr for a code gannet does not know (the caller reports "unknown tensor type N").
const DTypeTraits* FindDType(int32_t ggml_type);
// REQUIRES: t is a known type.
const DTypeTraits& Traits(DType t);
inline std::string_view DTypeName(DType t) { return Traits(t).name; }
std::optional<DType> DTypeFromName(std::string_view name);  // case-insensitive

// Bytes of n values; nullopt when n is not a multiple of the block size or overflows.
std::optional<int64_t> RowBytes(DType t, int64_t n);

}  // namespace gannet
