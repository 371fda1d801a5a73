// Q8_0, Q4_0 and Q5_0 on the AVX-512 VNNI target, on weights repacked at load into groups of 16
// rows (the 16-row layouts of repack.h): one 512-bit vpdpbusd multiplies 4 unsigned codes of each
// of the group's 16 rows with 4 of a token's activation codes broadcast from memory, and each
// row's sum grows in its own lane. Four such steps are a half block's exact int32 sum for 16 rows
// at once; the file-layout kernels need a transpose (Q4_0 / Q5_0, matmul_q4_avx512.cc) or 3
// vphaddd (Q8_0, matmul_avx512.cc) per 4 or 8 rows.
//
// The codes, per block of a group (8 vectors of 16 rows x 4 codes: vector 4 * half + quad holds
// codes 16 * half + 4 * quad .. + 3 of each row):
//   Q8_0: stored as they are used, sign bit flipped (w + 128 as u8);
//   Q4_0: 4 vectors of the file's packed bytes; the low nibbles are the first half's vectors and
//         the high nibbles (shifted down) the second half's: 3 ops per two code vectors;
//   Q5_0: as Q4_0, then each vector's 5th bits from a 64-bit mask (one bit per byte), added as 16
//         by a masked byte add: 2 ops per vector.
// Each row's codes are then its values plus an offset (128, 8 or 16), and each half block's sum
// starts at -offset * sum(x) of the half (the per-pass table holds -128 * sum(x); the 4-bit
// types shift it down, exactly, as it is a multiple of 128).
//
// Bits: the int32 sums are exact, as in the file-layout kernels; then per (row, half block) the
// same f32 steps: convert, scale dw * dx, FMA into the half's accumulator (blocks in order), and
// lo + hi at the end. A row gets the bits of the file-layout AVX-512 and AVX2 kernels, whatever
// the batch, group or tile (within the widths repack.h allows: past them the AVX2 kernels sum in
// another order). Padded lanes (rows past the matrix, or outside [r0, r1)) are computed and never
// stored.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 intrinsics: see the K-quant file
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "base/status.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/repack.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx512 {
namespace {

constexpr int kG = kRepackRows16;
static_assert(kG == 16, "one 512-bit vector holds 4 codes of each row of a group");

// Per-type pieces of a group's block: kCodeBytes of codes per block (the scales follow all the
// group's codes, repack.h), the start's shift (-128 * sum(x) >> kStartShift = -offset * sum(x)),
// and Codes, which makes the block's 8 code vectors.
struct Q8_0Group {
  static constexpr size_t kCodeBytes = 32 * kG;
  static constexpr int kStartShift = 0;
  [[gnu::always_inline]] static void Codes(const uint8_t* wb, __m512i w[8]) {
#pragma GCC unroll 8
    for (int v = 0; v < 8; ++v) w[v] = _mm512_loadu_si512(wb + 64 * v);
  }
};
struct Q4_0Group {
  static constexpr size_t kCodeBytes = 16 * kG;
  static constexpr int kStartShift = 4;  // offset 8
  [[gnu::always_inline]] static void Codes(const uint8_t* wb, __m512i w[8]) {
    const __m512i m = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m512i p = _mm512_loadu_si512(wb + 64 * q);
      w[q] = _mm512_and_si512(p, m);
      w[4 + q] = _mm512_and_si512(_mm512_srli_epi16(p, 4), m);
    }
  }
};
struct Q5_0Group {
  static constexpr size_t kCodeBytes = 20 * kG;
  static constexpr int kStartShift = 3;  // offset 16
  [[gnu::always_inline]] static void Codes(const uint8_t* wb, __m512i w[8]) {
    Q4_0Group::Codes(wb, w);
    const __m512i sixteen = _mm512_set1_epi8(16);
    const auto* masks = reinterpret_cast<const __mmask64*>(wb + 16 * kG);
#pragma GCC unroll 8
    for (int v = 0; v < 8; ++v) {
      w[v] = _mm512_mask_add_epi8(w[v], _load_mask64(const_cast<__mmask64*>(masks + v)), w[v],
                                  sixteen);
    }
  }
};

// Per (token, block) of a pass: the start of each half block's int32 sum (-128 times the sum of
// the half's activation codes) and the activation scale.
struct ActEntry {  // no initialisers: a tile's 64 KiB table on the stack costs nothing to make
  int32_t neg_lo, neg_hi;
  float dx;
};
constexpr size_t kActTableBytes = 64 * 1024;
constexpr int64_t kActTableEntries = kActTableBytes / sizeof(ActEntry);
static_assert(kActTableEntries >= kMaxRepackColsQ8_0 / 32,
              "the widest repacked row must fit one token's table");

// Tokens whose accumulators stay in registers through a group's blocks: 2 per token, beside the
// block's 8 code vectors and its scales (32 vector registers). 8 rather than 6: with 6, 7 tokens
// ran as 4 + 3 and the output head (262144 x 640, 2 threads) took 7.6 ms against 6.0 in one pass;
// one core, Q5_0 2048 x 640 at 7 and 8 tokens 128 / 133 -> 142 / 145 G multiply-adds/s, nothing
// slower.
constexpr int kMaxRegTokens = 8;
// How far ahead of its reads a group's first token tile fetches the weight stream into L2 (the
// copy is one contiguous stream: a group's codes, its scales, the next group). Without it a
// matrix streamed from memory decoded a third slower than the file-layout kernel, whose four row
// streams are prefetched. Into L2 (T1) measured better than into L1 for matrices that sit in L3.
// 16 KiB, of 8, 16, 24, 32, 48 and 64 KiB: Gemma 3's output head (262144 x 640 Q8_0, 2 threads)
// at 16 tokens 265 -> 302 G multiply-adds/s (8 KiB had been picked on one token); at one token
// 33 -> 35; SmolLM2-shaped Q8_0 decode 226-229 -> 239-241 t/s; 16 sequences of Gemma 3 through
// the engine 706 -> 766 t/s (gannet bench --parallel, three alternations each).
constexpr size_t kPrefetchBytes = 16384;
// Token tiles up to this many (decode: memory-bound) request the first kPrefetchBytes of a
// stream that starts with them up front (TileInterleaved, MatMulTile::stream_start); prefill's
// tiles are bound by their multiplies.
constexpr int kBurstMaxTokens = 4;

void FillActTable(const uint8_t* xq, size_t xq_stride, int nt, int64_t nb, ActEntry* tab) {
  const __m256i ones = _mm256_set1_epi8(1);
  for (int j = 0; j < nt; ++j) {
    const auto* x = reinterpret_cast<const BlockQ8_0*>(xq + j * xq_stride);
    ActEntry* e = tab + j * nb;
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i s =
          _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones,
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs)));
      // [lo lo lo lo | hi hi hi hi] partial sums -> [lo, hi, lo, hi].
      __m128i h = _mm_hadd_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      h = _mm_hadd_epi32(h, h);
      h = _mm_sub_epi32(_mm_setzero_si128(), _mm_slli_epi32(h, 7));
      e[b].neg_lo = _mm_cvtsi128_si32(h);
      e[b].neg_hi = _mm_extract_epi32(h, 1);
      e[b].dx = _cvtsh_ss(x[b].d);
    }
  }
}

// acc + the products of the 64 unsigned bytes w with 4 signed activation codes at p broadcast
// to every lane: vpdpbusd with a {1to16} memory operand (GCC 12 loads the broadcast into a
// register of its own instead, one uop and one register more per product).
static inline __m512i DotBroadcast4(__m512i acc, __m512i w, const int8_t* p) {
#if defined(__GNUC__) && !defined(__clang__)
  asm("vpdpbusd %2%{1to16%}, %1, %0"
      : "+v"(acc)
      : "v"(w), "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
#else
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(v));
#endif
}

// y[u * y_stride + lane] (lanes in `mask`) = the group's 16 rows times tokens u < U, whose
// blocks are at xq + u * xq_stride and table entries at tab + u * nb. kPrefetch: fetch the
// stream ahead (the group's first token tile; the others find its weights in cache).
template <class T, int U, bool kPrefetch>
void GroupTokens(const uint8_t* codes, const uint16_t* scales, int64_t nb, const uint8_t* xq,
                 size_t xq_stride, const ActEntry* tab, float* y, int64_t y_stride,
                 __mmask16 mask) {
  // The stream's bytes per block (codes and scales) and the lines that cover them from any
  // 32-byte-aligned start.
  constexpr size_t kStreamBytes = T::kCodeBytes + 2 * kG;
  constexpr int kLines = static_cast<int>((kStreamBytes + 32 + 63) / 64);
  __m512 acc_lo[U], acc_hi[U];
#pragma GCC unroll 16
  for (int u = 0; u < U; ++u) acc_lo[u] = acc_hi[u] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* wb = codes + static_cast<size_t>(b) * T::kCodeBytes;
    if constexpr (kPrefetch) {  // a hint; cannot fault
      const char* pf = reinterpret_cast<const char*>(codes) + b * kStreamBytes + kPrefetchBytes;
#pragma GCC unroll 16
      for (int l = 0; l < kLines; ++l) _mm_prefetch(pf + 64 * l, _MM_HINT_T1);
    }
    __m512i w[8];
    T::Codes(wb, w);
    const __m512 dw =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * kG)));
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) {
      const int8_t* x = reinterpret_cast<const BlockQ8_0*>(xq + u * xq_stride)[b].qs;
      const ActEntry& e = tab[u * nb + b];
      __m512i lo = _mm512_set1_epi32(e.neg_lo), hi = _mm512_set1_epi32(e.neg_hi);
      if constexpr (T::kStartShift != 0) {
        lo = _mm512_srai_epi32(lo, T::kStartShift);
        hi = _mm512_srai_epi32(hi, T::kStartShift);
      }
#pragma GCC unroll 16
      for (int q = 0; q < 4; ++q) {
        lo = DotBroadcast4(lo, w[q], x + 4 * q);
        hi = DotBroadcast4(hi, w[4 + q], x + 16 + 4 * q);
      }
      const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(e.dx));
      acc_lo[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), scale, acc_lo[u]);
      acc_hi[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), scale, acc_hi[u]);
    }
  }
#pragma GCC unroll 16
  for (int u = 0; u < U; ++u) {
    _mm512_mask_storeu_ps(y + u * y_stride, mask, _mm512_add_ps(acc_lo[u], acc_hi[u]));
  }
}

using GroupFn = void (*)(const uint8_t*, const uint16_t*, int64_t, const uint8_t*, size_t,
                         const ActEntry*, float*, int64_t, __mmask16);
template <class T, bool kPrefetch, int... U>
constexpr std::array<GroupFn, sizeof...(U) + 1> GroupFns(std::integer_sequence<int, U...>) {
  return {nullptr, &GroupTokens<T, U + 1, kPrefetch>...};
}
// Fns<T>::k[p][u]: GroupTokens<T, u, p> for 1 <= u <= kMaxRegTokens.
template <class T>
struct Fns {
  static constexpr std::array<GroupFn, kMaxRegTokens + 1> k[2] = {
      GroupFns<T, false>(std::make_integer_sequence<int, kMaxRegTokens>()),
      GroupFns<T, true>(std::make_integer_sequence<int, kMaxRegTokens>())};
};

// Rows [r0, r1) (any range; groups of kG from row 0 of w) for t.nt <= kMatMulWideTileTokens
// tokens, in passes whose table fits kActTableBytes; within a pass each group takes its tokens
// in register tiles of at most kMaxRegTokens, sized evenly (16 tokens: 8 + 8; 9: 5 + 4).
// With the caller's tables (t.xtab) the tile is one pass.
template <class T>
void TileInterleaved(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 32;
  GANNET_CHECK(nb >= 1 && nb <= kActTableEntries);
  GANNET_CHECK(t.xtab == nullptr || t.xtab_stride == nb * sizeof(ActEntry));
  const size_t group_bytes = kG * t.w_row_bytes;
  alignas(64) ActEntry own[kActTableEntries];  // uninitialised: filled before it is read
  if (t.stream_start && t.nt <= kBurstMaxTokens) {
    // The start of a thread's stream, before the first group's in-loop requests reach past it:
    // otherwise demand-fetched, a large part of a decode step's small matrices (a chunk that
    // follows the one before finds these lines requested by it). SmolLM2-shaped Q8_0 decode
    // (`gannet bench -m models/smollm2-135m-shape-q8_0.gguf -t 2 -p 16 -n 128 -r 2 --profile`), its
    // four matmul ops' ms per token summed, three alternations: 3.65 -> 3.45, 3.46 -> 3.46, 3.82
    // -> 3.68; in three earlier ones, with the cores on different dies, the 576 x 576 matmuls
    // 0.387-0.404
    // -> 0.372-0.378 ms and tg 214-220 -> 223-233 t/s.
    const char* start =
        reinterpret_cast<const char*>(t.w) + static_cast<size_t>(r0 / kG) * group_bytes;
    const size_t span = static_cast<size_t>((r1 + kG - 1) / kG - r0 / kG) * group_bytes;
    const size_t n = std::min(span, kPrefetchBytes);
    for (size_t off = 0; off < n; off += 64) _mm_prefetch(start + off, _MM_HINT_T1);
  }
  const int pass =
      t.xtab != nullptr ? t.nt : static_cast<int>(std::min<int64_t>(t.nt, kActTableEntries / nb));
  for (int j0 = 0; j0 < t.nt; j0 += pass) {
    const int np = std::min(pass, t.nt - j0);
    const uint8_t* xq = t.xq + j0 * t.xq_stride;
    const ActEntry* tab = reinterpret_cast<const ActEntry*>(t.xtab);
    if (tab == nullptr) {
      FillActTable(xq, t.xq_stride, np, nb, own);
      tab = own;
    }
    const int n_reg = (np + kMaxRegTokens - 1) / kMaxRegTokens;
    for (int64_t g = r0 / kG; g * kG < r1; ++g) {
      const int64_t row0 = g * kG;
      const int lane0 = static_cast<int>(std::max<int64_t>(r0, row0) - row0);
      const int lane1 = static_cast<int>(std::min<int64_t>(r1, row0 + kG) - row0);
      const auto mask = static_cast<__mmask16>(((1u << lane1) - 1) & ~((1u << lane0) - 1));
      const uint8_t* codes = t.w + static_cast<size_t>(g) * group_bytes;
      const auto* scales = reinterpret_cast<const uint16_t*>(codes + nb * T::kCodeBytes);
      for (int k = 0, u0 = 0; k < n_reg; ++k) {
        const int u = np / n_reg + (k < np % n_reg ? 1 : 0);
        Fns<T>::k[k == 0][u](codes, scales, nb, xq + u0 * t.xq_stride, t.xq_stride, tab + u0 * nb,
                             t.y + (j0 + u0) * t.y_stride + row0, t.y_stride, mask);
        u0 += u;
      }
    }
  }
}

}  // namespace

MatMulTileFn MatMulTileKernelRows16(DType wtype) {
  switch (wtype) {
    case DType::kQ8_0:
      return &TileInterleaved<Q8_0Group>;
    case DType::kQ4_0:
      return &TileInterleaved<Q4_0Group>;
    case DType::kQ5_0:
      return &TileInterleaved<Q5_0Group>;
    default:
      return nullptr;
  }
}

size_t Q8_0ActTableBytes(int64_t n_in) { return static_cast<size_t>(n_in / 32) * sizeof(ActEntry); }

void FillQ8_0ActTable(const uint8_t* xq, int64_t n_in, uint8_t* dst) {
  FillActTable(xq, 0, 1, n_in / 32, reinterpret_cast<ActEntry*>(dst));
}

}  // namespace gannet::cpu::avx512
