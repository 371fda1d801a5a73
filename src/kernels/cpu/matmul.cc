// MatMul: quantize the activation rows once into the caller's scratch, then split the output
// rows over the thread pool, each work item running a per-ISA tile kernel (matmul_internal.h).
//
// Work split. Rows are cut into chunks that threads claim from a shared counter, so a thread
// slowed by another process does not hold the others up. Within a chunk, tokens are taken
// kMatMulTileTokens at a time: each weight block is loaded once per tile and multiplied with
// every token of the tile, and the chunk's weights (sized to stay in L2) are reused by every
// tile. Decode (one token) streams each weight row exactly once.
#include <algorithm>
#include <atomic>

#include "base/status.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

// Weight bytes per chunk when several token tiles reuse it (fits a 256 KiB+ L2 with the
// activations beside it).
constexpr size_t kChunkWeightBytes = 128 * 1024;
// Below this many multiply-adds the pool's wake-up costs more than it saves.
constexpr int64_t kSingleThreadMacs = 32 * 1024;

size_t ActivationRowBytes(DType partner, int64_t n_in) {
  if (partner == DType::kF32) return 0;
  const auto rb = RowBytes(partner, n_in);
  return rb ? static_cast<size_t>(*rb) : 0;
}

}  // namespace

size_t MatMulScratchBytes(DType wtype, int64_t n_in, int64_t n_tokens) {
  return ActivationRowBytes(DotPartner(wtype), n_in) * static_cast<size_t>(n_tokens);
}

void MatMul(ThreadPool& pool, const MatMulArgs& a, Isa isa) {
  const DTypeTraits& tr = Traits(a.wtype);
  GANNET_CHECK(tr.can_load && a.n_in % tr.block_size == 0);
  if (a.n_out <= 0 || a.n_tokens <= 0) return;
  const DType partner = DotPartner(a.wtype);

  MatMulTileFn tile_fn = nullptr;
  QuantizeActFn quant_fn = nullptr;
  int tile_tokens = kMatMulTileTokens;
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {  // AVX-512 has no matmul kernels of its own yet
    tile_fn = avx2::MatMulTileKernel(a.wtype);
    if (tile_fn != nullptr) tile_tokens = avx2::MatMulTileTokens(a.wtype);
    quant_fn = avx2::MatMulQuantizer(partner);
  }
  if (tile_fn == nullptr) tile_fn = matmul_ref::TileKernel(a.wtype);
  if (quant_fn == nullptr) quant_fn = matmul_ref::Quantizer(partner);
  GANNET_CHECK(tile_fn != nullptr);

  const int n_threads = pool.size();
  const bool single = a.n_out * a.n_in * a.n_tokens < kSingleThreadMacs || n_threads == 1;

  // [n_tokens, n_in] activations in the partner type (or the caller's f32 rows as they are).
  MatMulTile base;
  base.w = static_cast<const uint8_t*>(a.w);
  base.w_row_bytes = static_cast<size_t>(*RowBytes(a.wtype, a.n_in));
  base.n_in = a.n_in;
  base.y_stride = a.y_stride;
  if (partner == DType::kF32) {
    base.xq = reinterpret_cast<const uint8_t*>(a.x);
    base.xq_stride = static_cast<size_t>(a.x_stride) * sizeof(float);
  } else {
    GANNET_CHECK(a.scratch != nullptr && quant_fn != nullptr);
    auto* scratch = static_cast<uint8_t*>(a.scratch);
    base.xq = scratch;
    base.xq_stride = ActivationRowBytes(partner, a.n_in);
    auto quantize = [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) {
        quant_fn(a.x + t * a.x_stride, scratch + static_cast<size_t>(t) * base.xq_stride, a.n_in);
      }
    };
    if (single || a.n_tokens == 1) {
      quantize(0, a.n_tokens, 0);
    } else {
      pool.ParallelFor(a.n_tokens, quantize);
    }
  }

  // Chunk rows: enough chunks for balance (8 per thread), small enough for L2 reuse in prefill.
  int64_t rows = (a.n_out + 8 * n_threads - 1) / (8 * n_threads);
  if (a.n_tokens > kMatMulTileTokens) {
    rows = std::min<int64_t>(rows, std::max<int64_t>(1, kChunkWeightBytes / base.w_row_bytes));
  }
  rows = std::max<int64_t>(rows, 1);
  const int64_t n_chunks = (a.n_out + rows - 1) / rows;

  auto run_chunk = [&](int64_t c) {
    const int64_t r0 = c * rows;
    const int64_t r1 = std::min(a.n_out, r0 + rows);
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += tile_tokens) {
      MatMulTile tile = base;
      tile.nt = static_cast<int>(std::min<int64_t>(tile_tokens, a.n_tokens - t0));
      tile.xq = base.xq + static_cast<size_t>(t0) * base.xq_stride;
      tile.y = a.y + t0 * a.y_stride;
      tile_fn(tile, r0, r1);
    }
  };
  if (single) {
    for (int64_t c = 0; c < n_chunks; ++c) run_chunk(c);
    return;
  }
  std::atomic<int64_t> next{0};
  pool.Run([&](int, int) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks;
         c = next.fetch_add(1, std::memory_order_relaxed)) {
      run_chunk(c);
    }
  });
}

}  // namespace gannet::cpu
