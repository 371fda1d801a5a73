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

namespace scalar {
void AttentionItem(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads);
}  // namespace scalar

namespace avx2 {
// REQUIRES (all): the CPU has AVX2, FMA and F16C.
void AttentionItem(const AttentionArgs& a, int64_t t, int64_t kvh, int64_t h_begin, int n_heads);
void RmsNorm(const float* x, int64_t x_stride, const float* w, float eps, int64_t n_rows,
             int64_t n_cols, float* out, int64_t out_stride);
void Glu(GluAct act, const float* gate, const float* up, int64_t n, float* out);
void Add(const float* a, const float* b, int64_t n, float* out);
}  // namespace avx2

}  // namespace gannet::cpu
