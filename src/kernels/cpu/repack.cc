#include "kernels/cpu/repack.h"

#include <cstring>

#include "base/status.h"
#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

// One K-quant group: rows [g * G, min(rows, g * G + G)) of src, blocks interleaved, zero past the
// end.
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

// One Q8_0 group in the layout of repack.h: codes [nb][8][16][4] (sign bit flipped), then
// scales [nb][16].
void RepackGroupQ8_0(const uint8_t* src, int64_t g, int64_t rows, size_t row_bytes, int64_t nb,
                     uint8_t* dst) {
  constexpr int G = kRepackRows16;
  uint8_t* codes = dst + static_cast<size_t>(g) * G * row_bytes;
  auto* scales = reinterpret_cast<uint16_t*>(codes + static_cast<size_t>(nb) * 32 * G);
  for (int k = 0; k < G; ++k) {
    const int64_t r = g * G + k;
    const auto* row =
        r < rows ? reinterpret_cast<const BlockQ8_0*>(src + static_cast<size_t>(r) * row_bytes)
                 : nullptr;
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* block = codes + static_cast<size_t>(b) * 32 * G;
      uint16_t d = 0;
      if (r < rows) std::memcpy(&d, &row[b].d, sizeof(d));
      std::memcpy(scales + b * G + k, &d, sizeof(d));
      for (int v = 0; v < 8; ++v) {  // v = 4 * half + quad: codes 4v .. 4v + 3
        uint32_t q4 = 0;
        if (r < rows) std::memcpy(&q4, row[b].qs + 4 * v, 4);
        q4 ^= 0x80808080u;
        std::memcpy(block + (v * G + k) * 4, &q4, 4);
      }
    }
  }
}

// One Q4_0 or Q5_0 group in the layout of repack.h: codes [nb][4][16][4] (the file's packed
// bytes), Q5_0's masks [nb][8] u64 after each block's codes, then scales [nb][16].
template <class Block>
void RepackGroupQ4(const uint8_t* src, int64_t g, int64_t rows, size_t row_bytes, int64_t nb,
                   uint8_t* dst) {
  constexpr int G = kRepackRows16;
  constexpr bool kQ5 = sizeof(Block) == sizeof(BlockQ5_0);
  constexpr size_t code_bytes = (kQ5 ? 20 : 16) * G;
  uint8_t* codes = dst + static_cast<size_t>(g) * G * row_bytes;
  auto* scales = reinterpret_cast<uint16_t*>(codes + static_cast<size_t>(nb) * code_bytes);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* block = codes + static_cast<size_t>(b) * code_bytes;
    uint64_t masks[8] = {};
    for (int k = 0; k < G; ++k) {
      const int64_t r = g * G + k;
      Block x{};
      if (r < rows)
        std::memcpy(&x, src + static_cast<size_t>(r) * row_bytes + b * sizeof(Block),
                    sizeof(Block));
      std::memcpy(scales + b * G + k, &x.d, sizeof(x.d));
      for (int q = 0; q < 4; ++q) std::memcpy(block + (q * G + k) * 4, x.qs + 4 * q, 4);
      if constexpr (kQ5) {
        uint32_t qh;
        std::memcpy(&qh, x.qh, 4);
        for (int v = 0; v < 8; ++v) {  // v = 4 * half + quad: values 4v .. 4v + 3 (as codes)
          for (int i = 0; i < 4; ++i) masks[v] |= uint64_t{(qh >> (4 * v + i)) & 1} << (4 * k + i);
        }
      }
    }
    if constexpr (kQ5) std::memcpy(block + 16 * G, masks, sizeof(masks));
  }
}

// Row k of a Q4_0 / Q5_0 group back in the file layout.
template <class Block>
void UnpackRowQ4(const uint8_t* group, int k, int64_t nb, uint8_t* out) {
  constexpr int G = kRepackRows16;
  constexpr bool kQ5 = sizeof(Block) == sizeof(BlockQ5_0);
  constexpr size_t code_bytes = (kQ5 ? 20 : 16) * G;
  const uint8_t* scales = group + static_cast<size_t>(nb) * code_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* block = group + static_cast<size_t>(b) * code_bytes;
    Block x;
    std::memcpy(&x.d, scales + (b * G + k) * 2, 2);
    for (int q = 0; q < 4; ++q) std::memcpy(x.qs + 4 * q, block + (q * G + k) * 4, 4);
    if constexpr (kQ5) {
      uint64_t masks[8];
      std::memcpy(masks, block + 16 * G, sizeof(masks));
      uint32_t qh = 0;
      for (int v = 0; v < 8; ++v) {
        for (int i = 0; i < 4; ++i)
          qh |= static_cast<uint32_t>((masks[v] >> (4 * k + i)) & 1) << (4 * v + i);
      }
      std::memcpy(x.qh, &qh, 4);
    }
    std::memcpy(out + b * sizeof(Block), &x, sizeof(Block));
  }
}

}  // namespace

bool CanRepack(DType type, Isa isa) {
  const bool kquant = type == DType::kQ4_K || type == DType::kQ5_K || type == DType::kQ6_K;
  if (type == DType::kQ8_0 || type == DType::kQ4_0 || type == DType::kQ5_0)
    return isa == Isa::kAvx512;
  return kquant && (isa == Isa::kAvx2 || isa == Isa::kAvx512);
}

bool CanRepackMatrix(DType type, Isa isa, int64_t cols) {
  if (!CanRepack(type, isa) || cols <= 0 || cols % Traits(type).block_size != 0) return false;
  if (type == DType::kQ8_0) return cols <= kMaxRepackColsQ8_0;
  // Past the AVX2 row-block width the file-layout kernels sum in another order (and the 16-row
  // kernel's table, 12 bytes per block, holds 5461 blocks).
  if (type == DType::kQ4_0 || type == DType::kQ5_0)
    return cols / 32 <= avx2::RowBlockMaxBlocks(type);
  return true;
}

int RepackGroupRows(DType type) {
  return type == DType::kQ8_0 || type == DType::kQ4_0 || type == DType::kQ5_0 ? kRepackRows16
                                                                              : kRepackRows;
}

size_t RepackedBytes(DType type, int64_t rows, int64_t cols) {
  const int64_t g = RepackGroupRows(type);
  const int64_t groups = (rows + g - 1) / g;
  return static_cast<size_t>(groups * g) * static_cast<size_t>(*RowBytes(type, cols));
}

void RepackRows(ThreadPool& pool, DType type, const void* src, int64_t rows, int64_t cols,
                void* dst) {
  const DTypeTraits& tr = Traits(type);
  GANNET_CHECK(cols % tr.block_size == 0);
  const size_t row_bytes = static_cast<size_t>(*RowBytes(type, cols));
  const int64_t n_blocks = cols / tr.block_size;
  const size_t block_bytes = row_bytes / static_cast<size_t>(n_blocks);
  const int64_t g_rows = RepackGroupRows(type);
  const int64_t groups = (rows + g_rows - 1) / g_rows;
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  pool.ParallelFor(groups, [&](int64_t g0, int64_t g1, int) {
    for (int64_t g = g0; g < g1; ++g) {
      if (type == DType::kQ8_0) {
        RepackGroupQ8_0(s, g, rows, row_bytes, n_blocks, d);
      } else if (type == DType::kQ4_0) {
        RepackGroupQ4<BlockQ4_0>(s, g, rows, row_bytes, n_blocks, d);
      } else if (type == DType::kQ5_0) {
        RepackGroupQ4<BlockQ5_0>(s, g, rows, row_bytes, n_blocks, d);
      } else {
        RepackGroup(s, g, rows, row_bytes, block_bytes, n_blocks, d);
      }
    }
  });
}

void UnpackRow(DType type, const void* copy, int64_t row, int64_t cols, void* dst) {
  const DTypeTraits& tr = Traits(type);
  GANNET_CHECK(cols % tr.block_size == 0 && row >= 0);
  const size_t row_bytes = static_cast<size_t>(*RowBytes(type, cols));
  const int64_t nb = cols / tr.block_size;
  const int64_t g_rows = RepackGroupRows(type);
  const int64_t k = row % g_rows;
  const auto* group = static_cast<const uint8_t*>(copy) +
                      static_cast<size_t>(row / g_rows) * static_cast<size_t>(g_rows) * row_bytes;
  auto* out = static_cast<uint8_t*>(dst);
  if (type == DType::kQ4_0) return UnpackRowQ4<BlockQ4_0>(group, static_cast<int>(k), nb, out);
  if (type == DType::kQ5_0) return UnpackRowQ4<BlockQ5_0>(group, static_cast<int>(k), nb, out);
  if (type != DType::kQ8_0) {
    const size_t block_bytes = row_bytes / static_cast<size_t>(nb);
    for (int64_t b = 0; b < nb; ++b) {
      std::memcpy(out + b * block_bytes, group + static_cast<size_t>(b * g_rows + k) * block_bytes,
                  block_bytes);
    }
    return;
  }
  const auto* scales = group + static_cast<size_t>(nb) * 32 * kRepackRows16;
  auto* blocks = reinterpret_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(&blocks[b].d, scales + (b * kRepackRows16 + k) * 2, 2);
    const uint8_t* codes = group + static_cast<size_t>(b) * 32 * kRepackRows16;
    for (int v = 0; v < 8; ++v) {
      uint32_t q4;
      std::memcpy(&q4, codes + (v * kRepackRows16 + k) * 4, 4);
      q4 ^= 0x80808080u;
      std::memcpy(blocks[b].qs + 4 * v, &q4, 4);
    }
  }
}

}  // namespace gannet::cpu
