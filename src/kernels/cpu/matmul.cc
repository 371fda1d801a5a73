// MatMul and MatMulGroup: quantize the activation rows once into the caller's scratch (once per
// dot-partner type for a group, after the fused RMS norm if any), then split the output rows of
// every product over the thread pool, each work item running a per-ISA tile kernel
// (matmul_internal.h).
//
// Work split. Each output's rows are cut into chunks, and threads claim the chunks of all the
// group's outputs from one shared counter, so a thread slowed by another process does not hold
// the others up and a group of small matrices (K and V are 256 rows in Gemma 3 270M) costs one
// wake-up instead of one each. Within a chunk, tokens are taken a tile at a time: each weight
// block is loaded once per tile and multiplied with every token of the tile, and the chunk's
// weights (sized to stay in L2) are reused by every tile. Decode (one token) streams each weight
// row exactly once.
//
// A GLU pair (gate, up) is one work list: a chunk computes the same rows of both products for a
// token tile into stack buffers and writes act(gate) * up, so neither [n_tokens, n_ff] product
// is ever written to memory.
#include <algorithm>
#include <atomic>

#include "base/status.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/repack.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

// Weight bytes per chunk when several token tiles reuse it (fits a 256 KiB+ L2 with the
// activations beside it).
constexpr size_t kChunkWeightBytes = 128 * 1024;
// Below this many multiply-adds the pool's wake-up costs more than it saves.
constexpr int64_t kSingleThreadMacs = 32 * 1024;
// A pre-norm row is normalised on the stack up to this width, in the scratch beyond it (or when
// an f32-partner weight reads the normalised rows in place of x).
constexpr int64_t kStackRowFloats = 8192;
// Floats of each of a GLU chunk's two stack tiles (token tile x chunk rows).
constexpr int64_t kGluTileFloats = 4096;
constexpr size_t kAlign = 64;

size_t AlignUp(size_t x) { return (x + kAlign - 1) & ~(kAlign - 1); }

size_t ActivationRowBytes(DType partner, int64_t n_in) {
  if (partner == DType::kF32) return 0;
  const auto rb = RowBytes(partner, n_in);
  return rb ? static_cast<size_t>(*rb) : 0;
}

struct Kernel {
  DType partner = DType::kF32;
  MatMulTileFn tile = nullptr;
  QuantizeActFn quant = nullptr;
  int tile_tokens = kMatMulTileTokens;
  bool q8_table = false;   // reads the per-token Q8_0 activation tables (MatMulTile::xtab)
  bool k_table = false;    // reads the transposed Q8_K tables of 16-token tiles (MatMulTile::xtab)
  bool q32_table = false;  // reads the transposed Q8_0 / Q8_1 tables of 16-token tiles (xtab)
};

bool IsKQuant(DType t) { return t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K; }
// The 32-value types whose AVX-512 tiles of 9..16 tokens read a transposed table.
bool IsQ32Wide(DType t) {
  return t == DType::kQ4_0 || t == DType::kQ4_1 || t == DType::kQ5_0 || t == DType::kQ5_1;
}
// Their tables, one per partner type: Q8_0 (Q4_0, Q5_0) and Q8_1 (Q4_1, Q5_1).
int Q32TableIndex(DType partner) { return partner == DType::kQ8_1 ? 1 : 0; }

Kernel PickKernel(DType wtype, bool interleaved, Isa isa) {
  const DTypeTraits& tr = Traits(wtype);
  GANNET_CHECK(tr.can_load);
  Kernel k;
  k.partner = DotPartner(wtype);
  if (interleaved) {  // kernels on the interleaved rows with the file layout's bits
    GANNET_CHECK(CanRepack(wtype, isa));
    if (RepackGroupRows(wtype) == kRepackRows16) {  // Q8_0, Q4_0, Q5_0 (AVX-512 only)
      k.tile = avx512::MatMulTileKernelRows16(wtype);
      k.q8_table = true;
    } else {
      k.tile = isa == Isa::kAvx512 ? avx512::MatMulTileKernelKInterleaved(wtype)
                                   : avx2::MatMulTileKernelKInterleaved(wtype);
    }
    GANNET_CHECK(k.tile != nullptr);
    k.tile_tokens =
        isa == Isa::kAvx512 ? avx512::MatMulTileTokens(wtype) : avx2::MatMulTileTokens(wtype);
    k.quant = avx2::MatMulQuantizer(k.partner);
    k.k_table = isa == Isa::kAvx512 && IsKQuant(wtype);
    return k;
  }
  if (isa == Isa::kAvx512) {
    k.tile = avx512::MatMulTileKernel(wtype);
    if (k.tile != nullptr) k.tile_tokens = avx512::MatMulTileTokens(wtype);
    k.k_table = k.tile != nullptr && IsKQuant(wtype);
    k.q32_table = k.tile != nullptr && IsQ32Wide(wtype);
  }
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {  // types without an AVX-512 kernel: AVX2's
    if (k.tile == nullptr) {
      k.tile = avx2::MatMulTileKernel(wtype);
      if (k.tile != nullptr) k.tile_tokens = avx2::MatMulTileTokens(wtype);
    }
    k.quant = avx2::MatMulQuantizer(k.partner);
  }
  if (k.tile == nullptr) k.tile = matmul_ref::TileKernel(wtype);
  if (k.quant == nullptr) k.quant = matmul_ref::Quantizer(k.partner);
  GANNET_CHECK(k.tile != nullptr);
  return k;
}

// Where a group's activations live in the scratch: the normalised f32 rows (when they cannot stay
// on the stack), one area of quantized rows per distinct partner type, in order of first use, and
// the per-token tables of the 16-row interleaved kernels (once for all its outputs, instead of once
// per chunk and tile: a 16-row chunk of 8192 inputs spent a third of its time refilling it), and
// likewise the AVX-512 K-quant and Q4_0 / Q4_1 / Q5_0 / Q5_1 kernels' transposed activations of
// every 16-token tile (a GLU chunk of 56 rows transposed its tile's activations for each of its
// two weights).
struct ScratchLayout {
  bool norm_rows = false;
  size_t norm_offset = 0;
  bool q8_tables = false;
  size_t q8_table_offset = 0, q8_table_stride = 0;
  bool k_tables = false;
  size_t k_table_offset = 0, k_table_stride = 0;
  bool q32_tables[2] = {};  // by Q32TableIndex
  size_t q32_table_offset[2] = {}, q32_table_stride = 0;
  int n_partners = 0;
  DType partners[kMaxMatMulGroup] = {};
  size_t offsets[kMaxMatMulGroup] = {};
  size_t strides[kMaxMatMulGroup] = {};
  size_t total = 0;

  int Find(DType partner) const {
    for (int i = 0; i < n_partners; ++i) {
      if (partners[i] == partner) return i;
    }
    return -1;
  }
};

ScratchLayout Layout(const MatMulGroupArgs& a) {
  GANNET_CHECK(a.n_outputs >= 1 && a.n_outputs <= kMaxMatMulGroup && a.outputs != nullptr);
  ScratchLayout l;
  bool f32_partner = false;
  for (int i = 0; i < a.n_outputs; ++i) {
    const DType partner = DotPartner(a.outputs[i].wtype);
    const bool rows16 =
        a.outputs[i].w_interleaved && RepackGroupRows(a.outputs[i].wtype) == kRepackRows16;
    if (rows16) l.q8_tables = true;
    // (Reserved on every target, filled and read on AVX-512: the size cannot depend on the ISA.)
    if (IsKQuant(a.outputs[i].wtype) && a.n_tokens > avx512::kMatMulKQuantTileTokens / 2)
      l.k_tables = true;
    if (IsQ32Wide(a.outputs[i].wtype) && !rows16 && a.n_tokens >= avx512::kQ32WideMinTokens)
      l.q32_tables[Q32TableIndex(partner)] = true;
    if (partner == DType::kF32) {
      f32_partner = true;
    } else if (l.Find(partner) < 0) {
      l.partners[l.n_partners] = partner;
      l.strides[l.n_partners] = ActivationRowBytes(partner, a.n_in);
      ++l.n_partners;
    }
  }
  size_t at = 0;
  for (int i = 0; i < l.n_partners; ++i) {
    l.offsets[i] = at;
    at = AlignUp(at + l.strides[i] * static_cast<size_t>(a.n_tokens));
  }
  // A single output's quantized rows start the scratch: MatMulScratchBytes stays exact for MatMul.
  l.total = l.n_partners == 1 && !a.pre_norm ? l.strides[0] * static_cast<size_t>(a.n_tokens) : at;
  if (l.q8_tables) {  // (only on the AVX-512 target: CanRepack)
    l.q8_table_offset = at;
    l.q8_table_stride = avx512::Q8_0ActTableBytes(a.n_in);
    at = AlignUp(at + l.q8_table_stride * static_cast<size_t>(a.n_tokens));
    l.total = at;
  }
  if (l.k_tables) {  // whole tiles: a last partial tile's table is a full one
    const int64_t tile = avx512::kMatMulKQuantTileTokens;
    l.k_table_offset = at;
    l.k_table_stride = avx512::KQuantActTableBytes(a.n_in);
    at =
        AlignUp(at + l.k_table_stride * static_cast<size_t>((a.n_tokens + tile - 1) / tile * tile));
    l.total = at;
  }
  for (int i = 0; i < 2; ++i) {  // whole tiles, as the K-quant tables
    if (!l.q32_tables[i]) continue;
    const int64_t tile = kMatMulWideTileTokens;
    l.q32_table_offset[i] = at;
    l.q32_table_stride = avx512::Q32ActTableBytes(a.n_in);
    at = AlignUp(at +
                 l.q32_table_stride * static_cast<size_t>((a.n_tokens + tile - 1) / tile * tile));
    l.total = at;
  }
  l.norm_rows = a.pre_norm && (f32_partner || a.n_in > kStackRowFloats);
  if (l.norm_rows) {
    l.norm_offset = at;
    l.total = at + static_cast<size_t>(a.n_in * a.n_tokens) * sizeof(float);
  }
  return l;
}

// One entry of the work list: an output (or a GLU pair) cut into chunks of `rows` rows.
struct Work {
  Kernel k[2];  // k[1]: the up projection of a GLU pair
  MatMulTile base[2];
  int64_t n_out = 0, rows = 0, first_chunk = 0, n_chunks = 0;
  int tile_tokens = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
};

MatMulTile BaseTile(const MatMulGroupArgs& a, const MatMulOutput& o, const Kernel& k,
                    const ScratchLayout& l, uint8_t* scratch) {
  MatMulTile t;
  t.w = static_cast<const uint8_t*>(o.w);
  t.w_row_bytes = static_cast<size_t>(*RowBytes(o.wtype, a.n_in));
  t.n_in = a.n_in;
  t.y_stride = o.y_stride;
  if (k.partner == DType::kF32) {
    const float* x = l.norm_rows ? reinterpret_cast<const float*>(scratch + l.norm_offset) : a.x;
    t.xq = reinterpret_cast<const uint8_t*>(x);
    t.xq_stride = static_cast<size_t>(l.norm_rows ? a.n_in : a.x_stride) * sizeof(float);
  } else {
    const int p = l.Find(k.partner);
    t.xq = scratch + l.offsets[p];
    t.xq_stride = l.strides[p];
  }
  if (k.q8_table) {
    t.xtab = scratch + l.q8_table_offset;
    t.xtab_stride = l.q8_table_stride;
  }
  if (k.k_table && l.k_tables) {
    t.xtab = scratch + l.k_table_offset;
    t.xtab_stride = l.k_table_stride;
  }
  if (k.q32_table && l.q32_tables[Q32TableIndex(k.partner)]) {
    t.xtab = scratch + l.q32_table_offset[Q32TableIndex(k.partner)];
    t.xtab_stride = l.q32_table_stride;
  }
  return t;
}

// Rows per chunk: enough chunks for balance (8 per thread), small enough for L2 reuse in prefill,
// and a multiple of 8 where that leaves at least one group: the row-block kernels take rows in
// groups of four (AVX2) or eight (AVX-512 Q4_0/Q4_1/Q5_0/Q5_1) and compute a chunk's last
// partial group as a whole one (a Q8_0 GLU chunk of 30 rows cost 32 rows' work; 12-row chunks
// of a 192-row K projection cost 16 rows' work on AVX-512 Q4_0: 8-row chunks measured 1.22x
// faster there). Interleaved weights take chunks of whole groups, so that a chunk (and a GLU
// chunk's weights, addressed from its first row) starts at a group: `group` is the rows per
// group of the interleaved weights (1: none).
int64_t ChunkRows(int64_t n_out, size_t row_bytes, int64_t n_tokens, int n_threads, int64_t group) {
  int64_t rows = (n_out + 8 * n_threads - 1) / (8 * n_threads);
  if (n_tokens > kMatMulTileTokens) {
    rows = std::min<int64_t>(
        rows, std::max<int64_t>(1, static_cast<int64_t>(kChunkWeightBytes / row_bytes)));
  }
  if (rows > 8) {
    rows = (rows + 4) / 8 * 8;  // the nearest multiple of 8
  } else if (rows > 4) {
    rows = 8;
  }
  rows = (rows + group - 1) / group * group;
  return std::max<int64_t>(rows, 1);
}

void RunChunk(const Work& w, int64_t c, int64_t n_tokens, GluAct act, Isa isa, bool stream_start) {
  const int64_t r0 = (c - w.first_chunk) * w.rows;
  const int64_t r1 = std::min(w.n_out, r0 + w.rows);
  if (w.k[1].tile == nullptr) {
    for (int64_t t0 = 0; t0 < n_tokens; t0 += w.tile_tokens) {
      MatMulTile tile = w.base[0];
      tile.nt = static_cast<int>(std::min<int64_t>(w.tile_tokens, n_tokens - t0));
      tile.xq = w.base[0].xq + static_cast<size_t>(t0) * w.base[0].xq_stride;
      if (tile.xtab != nullptr) tile.xtab += static_cast<size_t>(t0) * tile.xtab_stride;
      tile.y = w.y + t0 * w.y_stride;
      tile.stream_start = stream_start && t0 == 0;
      w.k[0].tile(tile, r0, r1);
    }
    return;
  }
  // GLU pair: the chunk's rows of gate and up for one token tile, then act(gate) * up.
  alignas(64) float gate[kGluTileFloats];
  alignas(64) float up[kGluTileFloats];
  const int64_t n = r1 - r0;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += w.tile_tokens) {
    const int nt = static_cast<int>(std::min<int64_t>(w.tile_tokens, n_tokens - t0));
    float* dst[2] = {gate, up};
    for (int h = 0; h < 2; ++h) {  // rows [r0, r1) as rows [0, n) of a matrix starting at row r0
      MatMulTile tile = w.base[h];
      tile.w = w.base[h].w + static_cast<size_t>(r0) * w.base[h].w_row_bytes;
      tile.nt = nt;
      tile.xq = w.base[h].xq + static_cast<size_t>(t0) * w.base[h].xq_stride;
      if (tile.xtab != nullptr) tile.xtab += static_cast<size_t>(t0) * tile.xtab_stride;
      tile.y = dst[h];
      tile.y_stride = n;
      tile.stream_start = stream_start && t0 == 0;
      w.k[h].tile(tile, 0, n);
    }
    for (int j = 0; j < nt; ++j)
      Glu(act, gate + j * n, up + j * n, n, w.y + (t0 + j) * w.y_stride + r0, isa);
  }
}

}  // namespace

size_t MatMulScratchBytes(DType wtype, int64_t n_in, int64_t n_tokens, bool w_interleaved) {
  const MatMulOutput out{.wtype = wtype, .w_interleaved = w_interleaved};
  return Layout(
             MatMulGroupArgs{.n_in = n_in, .n_tokens = n_tokens, .outputs = &out, .n_outputs = 1})
      .total;
}

size_t MatMulGroupScratchBytes(const MatMulGroupArgs& a) { return Layout(a).total; }

void MatMulGroup(ThreadPool& pool, const MatMulGroupArgs& a, Isa isa) {
  GANNET_CHECK(!a.glu || (a.n_outputs == 2 && a.outputs[0].n_out == a.outputs[1].n_out));
  for (int i = 0; i < a.n_outputs; ++i)
    GANNET_CHECK(a.n_in % Traits(a.outputs[i].wtype).block_size == 0);
  if (a.n_tokens <= 0) return;
  const ScratchLayout layout = Layout(a);
  auto* scratch = static_cast<uint8_t*>(a.scratch);
  GANNET_CHECK(layout.total == 0 || scratch != nullptr);

  Kernel kernels[kMaxMatMulGroup];
  int64_t macs = 0;
  for (int i = 0; i < a.n_outputs; ++i) {
    kernels[i] = PickKernel(a.outputs[i].wtype, a.outputs[i].w_interleaved, isa);
    macs += a.outputs[i].n_out * a.n_in * a.n_tokens;
  }
  const int n_threads = pool.size();
  const bool single = macs < kSingleThreadMacs || n_threads == 1;

  // The activations: normalised (pre_norm) and quantized once per partner type.
  QuantizeActFn quant[kMaxMatMulGroup] = {};
  for (int p = 0; p < layout.n_partners; ++p) {
    for (int i = 0; i < a.n_outputs; ++i) {
      if (kernels[i].partner == layout.partners[p]) quant[p] = kernels[i].quant;
    }
    GANNET_CHECK(quant[p] != nullptr);
  }
  if (layout.n_partners > 0 || a.pre_norm) {
    auto prepare = [&](int64_t t0, int64_t t1, int) {
      alignas(64) float row_buf[kStackRowFloats];
      for (int64_t t = t0; t < t1; ++t) {
        const float* row = a.x + t * a.x_stride;
        if (a.pre_norm) {
          float* dst = layout.norm_rows
                           ? reinterpret_cast<float*>(scratch + layout.norm_offset) + t * a.n_in
                           : row_buf;
          RmsNorm(row, a.n_in, a.norm_weight, a.norm_eps, 1, a.n_in, dst, a.n_in, isa);
          row = dst;
        }
        for (int p = 0; p < layout.n_partners; ++p) {
          quant[p](row, scratch + layout.offsets[p] + static_cast<size_t>(t) * layout.strides[p],
                   a.n_in);
        }
        if (layout.q8_tables) {
          const int p = layout.Find(DType::kQ8_0);
          avx512::FillQ8_0ActTable(
              scratch + layout.offsets[p] + static_cast<size_t>(t) * layout.strides[p], a.n_in,
              scratch + layout.q8_table_offset + static_cast<size_t>(t) * layout.q8_table_stride);
        }
      }
    };
    if (single || a.n_tokens == 1) {
      prepare(0, a.n_tokens, 0);
    } else {
      pool.ParallelFor(a.n_tokens, prepare);
    }
  }
  // The transposed tables of the 16-token tiles (K-quant, and Q4_0 / Q4_1 / Q5_0 / Q5_1 by
  // partner), from the quantized rows of every token of a tile: fill_tile(t0, nt) per tile.
  const auto fill_tables = [&](auto fill_tile) {
    const int tile = kMatMulWideTileTokens;
    auto fill = [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i)
        fill_tile(i * tile, static_cast<int>(std::min<int64_t>(tile, a.n_tokens - i * tile)));
    };
    const int64_t n_tiles = (a.n_tokens + tile - 1) / tile;
    if (single || n_tiles == 1) {
      fill(0, n_tiles, 0);
    } else {
      pool.ParallelFor(n_tiles, fill);
    }
  };
  static_assert(avx512::kMatMulKQuantTileTokens == kMatMulWideTileTokens);
  if (layout.k_tables && isa == Isa::kAvx512) {
    const int p = layout.Find(DType::kQ8_K);
    GANNET_CHECK(p >= 0);
    fill_tables([&](int64_t t0, int nt) {
      avx512::FillKQuantActTable(
          scratch + layout.offsets[p] + static_cast<size_t>(t0) * layout.strides[p],
          layout.strides[p], nt, a.n_in,
          scratch + layout.k_table_offset + static_cast<size_t>(t0) * layout.k_table_stride);
    });
  }
  for (int ti = 0; ti < 2; ++ti) {
    if (!layout.q32_tables[ti] || isa != Isa::kAvx512) continue;
    const DType partner = ti == 1 ? DType::kQ8_1 : DType::kQ8_0;
    const int p = layout.Find(partner);
    GANNET_CHECK(p >= 0);
    fill_tables([&](int64_t t0, int nt) {
      avx512::FillQ32ActTable(
          partner, scratch + layout.offsets[p] + static_cast<size_t>(t0) * layout.strides[p],
          layout.strides[p], nt, a.n_in,
          scratch + layout.q32_table_offset[ti] +
              static_cast<size_t>(t0) * layout.q32_table_stride);
    });
  }

  // The work list: every output's chunks (a GLU pair's as one), claimed in order.
  Work work[kMaxMatMulGroup];
  int n_work = 0;
  int64_t n_chunks = 0;
  for (int i = 0; i < a.n_outputs; ++i) {
    const MatMulOutput& o = a.outputs[i];
    if (o.n_out <= 0) continue;
    Work& w = work[n_work++];
    w.k[0] = kernels[i];
    w.base[0] = BaseTile(a, o, kernels[i], layout, scratch);
    w.n_out = o.n_out;
    w.y = o.y;
    w.y_stride = o.y_stride;
    w.tile_tokens = kernels[i].tile_tokens;
    size_t row_bytes = w.base[0].w_row_bytes;
    // Groups of 4 and of 16 rows: a multiple of the larger is one of both.
    int64_t group = o.w_interleaved ? RepackGroupRows(o.wtype) : 1;
    if (a.glu) {
      if (a.outputs[1].w_interleaved)
        group = std::max<int64_t>(group, RepackGroupRows(a.outputs[1].wtype));
      w.k[1] = kernels[1];
      w.base[1] = BaseTile(a, a.outputs[1], kernels[1], layout, scratch);
      w.tile_tokens = std::min(kernels[0].tile_tokens, kernels[1].tile_tokens);
      row_bytes += w.base[1].w_row_bytes;
    }
    // A tile reads its K-quant table only if it starts at a multiple of 16 tokens (a GLU pair
    // with a narrower partner takes narrower tiles).
    for (int h = 0; h < 2; ++h) {
      if ((w.k[h].k_table || w.k[h].q32_table) && w.tile_tokens != kMatMulWideTileTokens)
        w.base[h].xtab = nullptr;
    }
    w.rows = ChunkRows(o.n_out, row_bytes, a.n_tokens, n_threads, group);
    // (Still a multiple of the group: 4096 / 4, 8 or 16 is one of 16.)
    static_assert(kGluTileFloats / kMatMulWideTileTokens % kRepackRows16 == 0);
    if (a.glu) w.rows = std::min<int64_t>(w.rows, kGluTileFloats / w.tile_tokens);
    w.first_chunk = n_chunks;
    w.n_chunks = (o.n_out + w.rows - 1) / w.rows;
    n_chunks += w.n_chunks;
    if (a.glu) break;  // outputs[1] is the pair's second half
  }

  // after: the chunk this thread ran before (-1: none); a chunk starts a stream unless it
  // follows that one within the same output.
  auto run = [&](int64_t c, int64_t after) {
    int i = 0;
    while (c >= work[i].first_chunk + work[i].n_chunks) ++i;
    const bool stream_start = c != after + 1 || c == work[i].first_chunk;
    RunChunk(work[i], c, a.n_tokens, a.act, isa, stream_start);
  };
  if (single) {
    for (int64_t c = 0; c < n_chunks; ++c) run(c, c - 1);
    return;
  }
  // Each thread takes the chunks of its own contiguous share in order, so that it reads one
  // sequential stream of weights, which the hardware prefetchers follow from chunk to chunk (with
  // the chunks dealt out in turn, each thread's stream had a gap at every chunk); then it takes
  // what is left of the others' shares, so a thread the OS has not scheduled holds no one up.
  struct alignas(64) Share {
    std::atomic<int64_t> next;
    int64_t end;
  };
  constexpr int kMaxShares = 64;
  Share shares[kMaxShares];
  const int n_shares = std::min(n_threads, kMaxShares);
  for (int t = 0; t < n_shares; ++t) {
    shares[t].next.store(n_chunks * t / n_shares, std::memory_order_relaxed);
    shares[t].end = n_chunks * (t + 1) / n_shares;
  }
  pool.Run([&](int ti, int) {
    int64_t last = -1;
    for (int k = 0; k < n_shares; ++k) {
      Share& sh = shares[(ti + k) % n_shares];
      for (int64_t c = sh.next.fetch_add(1, std::memory_order_relaxed); c < sh.end;
           c = sh.next.fetch_add(1, std::memory_order_relaxed)) {
        run(c, last);
        last = c;
      }
    }
  });
}

void MatMul(ThreadPool& pool, const MatMulArgs& a, Isa isa) {
  const MatMulOutput out{.wtype = a.wtype,
                         .w = a.w,
                         .n_out = a.n_out,
                         .w_interleaved = a.w_interleaved,
                         .y = a.y,
                         .y_stride = a.y_stride};
  MatMulGroup(pool,
              MatMulGroupArgs{.x = a.x,
                              .x_stride = a.x_stride,
                              .n_in = a.n_in,
                              .n_tokens = a.n_tokens,
                              .outputs = &out,
                              .n_outputs = 1,
                              .scratch = a.scratch},
              isa);
}

}  // namespace gannet::cpu
