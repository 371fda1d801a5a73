// Internal to kernels/cpu: the per-ISA entry points behind the dispatch in ops.cc and
// attention.cc. Only plain function declarations live here, so that the files compiled for a
// wider ISA (*_avx2.cc) share no inline code with baseline files (an inline function compiled
// with -mavx2 could otherwise be the copy the linker keeps for the whole program).
#pragma once

#include <cstdint>

#include "kernels/cpu/ops.h"

namespace gannet::cpu {

// One attention work item: token t, kv head kvh, query heads [h_begin, h_begin + n_heads) (all
// of them mapping to kvh). Writes those heads' output rows; reads every visible K/V row once.
// REQUIRES: 1 <= n_heads <= kAttentionMaxHeads; out does not alias q or the cache.
inline constexpr int kAttentionMaxHeads = 8;
using AttentionItemFn = void (*)(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin,
                                 int n_heads);

// The keys one query row visits, in visiting order: the consecutive slots [first, first + n_run),
// then the tree slots tree_base + tree_j[0 .. n_tree) in increasing j (for a token tree: the
// row's ancestors from the root down, then itself). An ordinary causal row has only the run
// [lo, pos]; a tree row has the committed run [lo, tree_base) and its path, which is the key
// sequence of that path evaluated as a chain. Plain data, shared by every ISA's kernel so that
// they all visit the same keys in the same tiles.
struct AttentionKeys {
  int64_t first = 0, n_run = 0;
  int64_t tree_base = 0;
  int n_tree = 0;
  int8_t tree_j[kMaxTreeTokens];
};
// The visible keys of row t (causal mask, window, tree mask).
void AttentionKeysOf(const AttentionArgs& a, int64_t t, AttentionKeys* keys);
// Row pointers of kv head kvh (element offset head_off) for keys [k0, k0 + n) of `keys`.
// REQUIRES: k0 + n <= keys.n_run + keys.n_tree.
void AttentionTileRows(const AttentionArgs& a, const AttentionKeys& keys, int64_t k0, int64_t n,
                       int64_t head_off, const uint16_t** k_rows, const uint16_t** v_rows);

// Split by key tiles (decode: few query rows, many keys). Every query row's keys (AttentionKeysOf)
// fall in tiles of kAttentionTile; a tile's partial (its largest score, its weights' sum and
// their V sum, per query head) can be computed apart, and the partials folded in tile order give
// exactly what an item (AttentionItem) computes for that row: an item does the same, a tile at a
// time. The kernels that split so: the AVX2 target's, for head dims that are a multiple of 8 and
// at most kAttentionMaxHeadDim.
inline constexpr int64_t kAttentionTile = 32;
inline constexpr int64_t kAttentionMaxHeadDim = 512;
// Floats of one tile's partials for all query heads: n_head * (head_dim + 2).
int64_t AttentionPartialFloats(const AttentionArgs& a);
// Tiles of row t's keys.
int64_t AttentionTiles(const AttentionArgs& a, int64_t t);

namespace scalar {
void AttentionItem(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads);
}  // namespace scalar

namespace avx2 {
// REQUIRES (all): the CPU has AVX2, FMA and F16C.
void AttentionItem(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads);
// The partials of tiles [tile_begin, tile_end) of rows[0 .. n_rows) for every query head: row
// r's tile i at parts[r] + (i - tile_begin) * AttentionPartialFloats(a), head h's at
// h * (head_dim + 2) in it: max, sum, then head_dim floats of V sums. Rows that share tiles (the
// same keys in them: the same first key, and the tiles inside every row's run) take one call, so
// that each tile's K and V rows are converted once for all of them; each row's partials are
// those of a call for it alone. REQUIRES: head_dim % 8 == 0, <= kAttentionMaxHeadDim; the rows
// share the tiles (or n_rows == 1).
void AttentionTilePartials(const AttentionArgs& a, const int64_t* rows, int n_rows,
                           int64_t tile_begin, int64_t tile_end, float* const* parts);
// Row t's output for query head h from its n_tiles partials at part (laid out as above, from
// tile 0).
void AttentionFold(const AttentionArgs& a, int64_t t, int64_t h, int64_t n_tiles,
                   const float* part);
void RmsNorm(const float* x, int64_t x_stride, const float* w, float eps, int64_t n_rows,
             int64_t n_cols, float* out, int64_t out_stride);
void Glu(GluAct act, const float* gate, const float* up, int64_t n, float* out);
void Add(const float* a, const float* b, int64_t n, float* out);
// StoreKv with vcvtps2ph (round to nearest even, as F32ToF16); a group of 8 values with a NaN
// takes F32ToF16 (the instruction keeps NaN payload bits that F32ToF16 canonicalises).
void StoreKv(const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t n_tokens,
             int64_t row_elems, const int32_t* pos, uint16_t* const* k_blocks,
             uint16_t* const* v_blocks, int64_t block_size);
}  // namespace avx2

}  // namespace gannet::cpu
