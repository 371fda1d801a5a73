#include "kernels/cpu/repack.h"

#include <cstring>

#include "base/status.h"
#include "kernels/cpu/matmul_internal.h"

namespace gannet::cpu {
namespace {

// One group: rows [g * G, min(rows, g * G + G)) of src, blocks interleaved, zero past the end.
void RepackGroup(const uint8_t* src, int64_t g, int64_t rows, size_t row_bytes, size_t block_bytes,
                 int64_t n_blocks, uint8_t* dst) {
  constexpr int G = kRepackRows;
  uint8_t* out = dst + static_cast<size_t>(g) * G * row_bytes;
  for (int k = 0; k < G; ++k) {
    const int64_t r = g * G + k;
    for (int64_t b = 0; b < n_blocks; ++b) {
      uint8_t* slot = out + static_cast<size_t>(b * G + k) * block_bytes;
      if (r < rows) {
        std::memcpy(slot, src + static_cast<size_t>(r) * row_bytes + b * block_bytes, block_bytes);
      } else {
        std::memset(slot, 0, block_bytes);
      }
    }
  }
}

}  // namespace

bool CanRepack(DType type, Isa isa) {
  const bool kquant = type == DType::kQ4_K || type == DType::kQ5_K || type == DType::kQ6_K;
  return kquant && (isa == Isa::kAvx2 || isa == Isa::kAvx512);
}

size_t RepackedBytes(DType type, int64_t rows, int64_t cols) {
  const int64_t groups = (rows + kRepackRows - 1) / kRepackRows;
  return static_cast<size_t>(groups * kRepackRows) * static_cast<size_t>(*RowBytes(type, cols));
}

void RepackRows(ThreadPool& pool, DType type, const void* src, int64_t rows, int64_t cols,
                void* dst) {
  const DTypeTraits& tr = Traits(type);
  GANNET_CHECK(cols % tr.block_size == 0);
  const size_t row_bytes = static_cast<size_t>(*RowBytes(type, cols));
  const int64_t n_blocks = cols / tr.block_size;
  const size_t block_bytes = row_bytes / static_cast<size_t>(n_blocks);
  const int64_t groups = (rows + kRepackRows - 1) / kRepackRows;
  pool.ParallelFor(groups, [&](int64_t g0, int64_t g1, int) {
    for (int64_t g = g0; g < g1; ++g) {
      RepackGroup(static_cast<const uint8_t*>(src), g, rows, row_bytes, block_bytes, n_blocks,
                  static_cast<uint8_t*>(dst));
    }
  });
}

}  // namespace gannet::cpu
