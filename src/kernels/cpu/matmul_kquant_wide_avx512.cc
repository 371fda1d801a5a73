// AVX-512 VNNI K-quant tiles (Q4_K, Q5_K, Q6_K against Q8_K) for 9..16 tokens: prefill tiles and
// a batched decode step of up to 16 sequences. Compiled with the AVX-512 flags; reached from the
// tile dispatch of matmul_kquant_avx512.cc.
//
// Tokens in the lanes. The 4- and 8-token tiles (matmul_kquant_avx512.cc) keep a row's values in
// the lanes of a vpdpbusd and so pay, per token, the int16 packs and scale madds that apply the
// sub-block scales, then the horizontal adds that bring the lanes together: about as many other
// instructions as vpdpbusd. Here lane t of every vector is token t: vpdpbusd multiplies 4 codes of
// one row, broadcast to every lane, with 4 activations of each of 16 tokens, so a lane
// accumulates its token's exact sum over a 32-value sub-block (Q6_K: 16 values) with no
// horizontal step, and the sub-block scale is one vpmulld for 16 tokens. Per row and super-block
// that is 64 vpdpbusd, 8 (Q6_K 16) vpmulld and a few vpmaddwd for the mins (Q6_K: the -32
// offset) for 16 tokens; on one Zen 4 core 2048 x 2048 x 16 Q4_K ran at 145 G multiply-adds/s
// against the 8-token tiles' 95 (vpdpbusd alone peaks near 156). The activations are transposed
// (x[p] lane t = dword p of token t's codes) once per MatMul call into a table (MatMul fills it:
// FillKQuantActTable) or, without one, once per slice of super-blocks here; every row of the
// chunk reads them. A row group's codes are unpacked once per super-block into a small L1 buffer
// that the broadcasts read.
//
// Bits. The integer sums are exact (a sub-block lane at most 32 x 31 x 128 = 126976, a Q6_K
// group's 16 x 63 x 128 = 129024; a row's super-block sum as in the 4/8-token tiles, within int32)
// and the same integers as there; the f32 recipe per
// (row, token) is theirs: for each super-block in order acc = fma(d * xd, isum, acc) and, for
// Q4_K/Q5_K, acc = fnmadd(dmin * xd, msum, acc). So the results have the bits of the other tiles
// and of the AVX2 kernels for every token count (MatMulKQuantTiles.Avx512BitsEqualAvx2).
// GCC 12's AVX-512 intrinsic headers initialise their "undefined" vectors from themselves, which
// -Wmaybe-uninitialized (and, in the sanitizer build, -Wuninitialized) reports at every inlined use
// (a false positive, gone in later GCC).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/matmul_kquant_avx512_inl.h"
#include "kernels/cpu/matmul_wide_avx512_inl.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx512 {
namespace {

constexpr int kTokens = kWideTokens;
constexpr int kRows = kWideRows;  // rows per step (one interleaved group)
static_assert(kRows == kRepackRows, "a step reads one interleaved group");
// Super-blocks per slice: 8 x 4 KiB of transposed activations (a 2048-wide row in one slice),
// from L1 and L2; each is read once per 4 rows.
constexpr int kSliceBlocks = 8;

// One super-block of a tile's activations: x[p] lane t = dword p (values 4p..4p+3) of token t's
// codes; bs[k] lane t = token t's bsums 2k, 2k + 1 (an int16 pair); xd lane t its scale. 16 x 292
// bytes: a tile's table takes the bytes of its 16 Q8_K rows (KQuantActTableBytes). Read and written
// with unaligned loads and stores, and every member a byte array (alignment 1, so that a block may
// sit at any address without undefined behaviour): a caller's scratch need not be aligned.
struct WideBlock {
  int8_t x[64][64];
  uint8_t bs[8][64];                    // int16 pairs
  uint8_t xd[kTokens * sizeof(float)];  // floats
};
static_assert(sizeof(WideBlock) == kTokens * sizeof(BlockQ8_K));
static_assert(alignof(WideBlock) == 1);

// dst[b - s0] = super-block b of the tile's tokens, for b in [s0, s1) (tokens past nt repeat
// token 0; their lanes are never stored).
static void FillBlocks(const BlockQ8_K* const x[kTokens], int64_t s0, int64_t s1, WideBlock* dst) {
  for (int64_t b = s0; b < s1; ++b) {
    WideBlock& o = dst[b - s0];
    for (int m = 0; m < 4; ++m) {
      __m512i r[kTokens];
      for (int j = 0; j < kTokens; ++j) r[j] = Load512(x[j][b].qs + 64 * m);
      Transpose16(r);
      for (int d = 0; d < 16; ++d) _mm512_storeu_si512(o.x[16 * m + d], r[d]);
    }
    // The bsums: 8 dwords a token, the same transpose on 8 of the 16 dwords.
    __m512i r[kTokens];
    for (int j = 0; j < kTokens; ++j) r[j] = _mm512_castsi256_si512(Load256(x[j][b].bsums));
    Transpose16(r);
    for (int k = 0; k < 8; ++k) _mm512_storeu_si512(o.bs[k], r[k]);
    for (int j = 0; j < kTokens; ++j)
      std::memcpy(o.xd + j * sizeof(float), &x[j][b].d, sizeof(float));
  }
}

// The tile's tokens' rows; tokens past nt repeat token 0.
static inline void TileTokens(const uint8_t* xq, size_t xq_stride, int nt,
                              const BlockQ8_K* x[kTokens]) {
  for (int j = 0; j < kTokens; ++j)
    x[j] = reinterpret_cast<const BlockQ8_K*>(xq + (j < nt ? j : 0) * xq_stride);
}

// The tile's activations, super-blocks [s0, s1): the table MatMul filled (t.xtab), or filled here
// into buf, a slice at a time (kernels called without a table, as the tests do).
class Activations {
 public:
  explicit Activations(const MatMulTile& t) : t_(t), nb_(t.n_in / 256) {
    TileTokens(t.xq, t.xq_stride, t.nt, x_);
  }
  // With a table, a row group runs its whole row (the table from L2): on 2048 x 8192 Q6_K that
  // measured 121 against 112 G multiply-adds/s for 8-super-block slices that reload y.
  int64_t SliceBlocks() const { return t_.xtab != nullptr ? nb_ : kSliceBlocks; }
  const WideBlock* Slice(int64_t s0, int64_t s1) {
    if (t_.xtab != nullptr) return reinterpret_cast<const WideBlock*>(t_.xtab) + s0;
    FillBlocks(x_, s0, s1, buf_);
    return buf_;
  }

 private:
  const MatMulTile& t_;
  const int64_t nb_;
  const BlockQ8_K* x_[kTokens];
  alignas(64) WideBlock buf_[kSliceBlocks];
};

// How far ahead of its reads a step fetches an interleaved group's stream into L2, in
// super-blocks (G == 1, the file layout: four row streams the hardware follows). Without it a
// batched decode step streamed these weights from memory slower than it computed them:
// matmul_rate 65536 x 2048 at 16 tokens, 2 threads, Q4_K 252 -> 285 and Q6_K 201 -> 261 G
// multiply-adds/s (8 of 8, 16 and 32 super-blocks).
constexpr int64_t kWidePrefetchBlocks = 8;

template <int G, class Block>
static inline void PrefetchStream(const Block* w0, int64_t b) {
  if constexpr (G > 1) PrefetchGroupStream<G, Block, 2>(w0, b, kWidePrefetchBlocks);
}

// The 4 rows of a step; a last group of fewer repeats its last row (not stored).
template <int G, class Block>
static inline void StepRows(const MatMulTile& t, int64_t r, int64_t r1, const Block* w[kRows]) {
  for (int k = 0; k < kRows; ++k) w[k] = RowBlocks<G, Block>(t, std::min<int64_t>(r + k, r1 - 1));
}

// The 4 rows' codes of one super-block in value order (u8), 256 bytes a row.
using Codes = uint8_t[kRows][256];

static inline __m512i Broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// tot[k] += sum over groups g of sc[k][g] x (row k's codes . tokens' activations over group g),
// groups of kGroupDwords dwords (Q4_K/Q5_K: 8, 32 values; Q6_K: 4, 16 values). Two groups at a
// time: 8 independent vpdpbusd chains for the 4 rows.
template <int kGroupDwords>
static inline void DotRows(const Codes& codes, const int32_t (*sc)[64 / kGroupDwords],
                           const int8_t (*x)[64], __m512i tot[kRows]) {
  constexpr int kGroups = 64 / kGroupDwords;
  for (int g = 0; g < kGroups; g += 2) {
    __m512i a[kRows][2];
    for (int k = 0; k < kRows; ++k) a[k][0] = a[k][1] = _mm512_setzero_si512();
    for (int q = 0; q < kGroupDwords; ++q) {
      const int p0 = g * kGroupDwords + q, p1 = p0 + kGroupDwords;
      const __m512i x0 = _mm512_loadu_si512(x[p0]), x1 = _mm512_loadu_si512(x[p1]);
      for (int k = 0; k < kRows; ++k) {
        a[k][0] = _mm512_dpbusd_epi32(a[k][0], Broadcast4(codes[k] + 4 * p0), x0);
        a[k][1] = _mm512_dpbusd_epi32(a[k][1], Broadcast4(codes[k] + 4 * p1), x1);
      }
    }
    for (int k = 0; k < kRows; ++k) {
      tot[k] = _mm512_add_epi32(
          tot[k], _mm512_add_epi32(_mm512_mullo_epi32(a[k][0], _mm512_set1_epi32(sc[k][g])),
                                   _mm512_mullo_epi32(a[k][1], _mm512_set1_epi32(sc[k][g + 1]))));
    }
  }
}

// sum_k pairs[k] . bs[k] for one row (int16 pairs per dword): lane t = token t's sum.
template <int kPairs>
static inline __m512i PairSums(const int32_t* pairs, const uint8_t (*bs)[64]) {
  __m512i m = _mm512_madd_epi16(_mm512_loadu_si512(bs[0]), _mm512_set1_epi32(pairs[0]));
  for (int k = 1; k < kPairs; ++k)
    m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(bs[k]), _mm512_set1_epi32(pairs[k]));
  return m;
}

template <class Block, bool kHighBit, int G>
void WideQ45K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  Activations act(t);
  alignas(64) Codes codes;
  alignas(64) int32_t sc[kRows][8];
  alignas(64) int32_t mn[kRows][8];  // (min k, min k) int16 pairs against bsums 2k, 2k + 1
  for (int64_t s0 = 0; s0 < nb; s0 += act.SliceBlocks()) {
    const int64_t s1 = std::min<int64_t>(nb, s0 + act.SliceBlocks());
    const WideBlock* xs = act.Slice(s0, s1);
    for (int64_t r = r0; r < r1; r += kRows) {
      const Block* w[kRows];
      StepRows<G>(t, r, r1, w);
      __m512 acc[kRows];
      LoadAcc(t, r, r1, s0 == 0, acc);
      for (int64_t b = s0; b < s1; ++b) {
        PrefetchStream<G>(w[0], b);
        const int64_t i = b - s0;
        const Block* wb[kRows];
        for (int k = 0; k < kRows; ++k) {
          wb[k] = &w[k][b * G];
          __m512i c[4];
          UnpackQ45K<Block, kHighBit>(*wb[k], c);
          // c[0] = [sub-block 0 | 2], c[1] = [1 | 3]: value order is [c0.lo | c1.lo] etc.
          auto* dst = reinterpret_cast<__m512i*>(codes[k]);
          _mm512_store_si512(dst, _mm512_shuffle_i64x2(c[0], c[1], 0x44));
          _mm512_store_si512(dst + 1, _mm512_shuffle_i64x2(c[0], c[1], 0xEE));
          _mm512_store_si512(dst + 2, _mm512_shuffle_i64x2(c[2], c[3], 0x44));
          _mm512_store_si512(dst + 3, _mm512_shuffle_i64x2(c[2], c[3], 0xEE));
        }
        // Lane k of UnpackScales4: row k's [scales 0..7 | mins 0..7] bytes.
        const __m512i scales = UnpackScales4(LoadHeads4(wb));
        const __m256i sc_bytes = _mm512_castsi512_si256(
            _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 0, 0, 0, 0), scales));
        const __m256i mn_bytes = _mm512_castsi512_si256(
            _mm512_permutexvar_epi64(_mm512_setr_epi64(1, 3, 5, 7, 0, 0, 0, 0), scales));
        _mm512_store_si512(sc[0], _mm512_cvtepu8_epi32(_mm256_castsi256_si128(sc_bytes)));
        _mm512_store_si512(sc[2], _mm512_cvtepu8_epi32(_mm256_extracti128_si256(sc_bytes, 1)));
        // Rows 2h, 2h + 1 (the half's index spelled as a constant: clang requires one).
        const __m128i mn_half[2] = {_mm256_castsi256_si128(mn_bytes),
                                    _mm256_extracti128_si256(mn_bytes, 1)};
        for (int h = 0; h < 2; ++h) {
          const __m512i m = _mm512_cvtepu8_epi32(mn_half[h]);
          _mm512_store_si512(mn[2 * h], _mm512_or_si512(m, _mm512_slli_epi32(m, 16)));
        }
        __m512i tot[kRows];
        for (int k = 0; k < kRows; ++k) tot[k] = _mm512_setzero_si512();
        DotRows<8>(codes, sc, xs[i].x, tot);
        const __m512 xd = _mm512_loadu_ps(xs[i].xd);
        for (int k = 0; k < kRows; ++k) {
          const __m512i msum = PairSums<8>(mn[k], xs[i].bs);
          acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(HalfToFloat(wb[k]->d)), xd),
                                   _mm512_cvtepi32_ps(tot[k]), acc[k]);
          acc[k] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(HalfToFloat(wb[k]->dmin)), xd),
                                    _mm512_cvtepi32_ps(msum), acc[k]);
        }
      }
      StoreAcc(t, r, r1, acc);
    }
  }
}

template <int G>
void WideQ6K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  Activations act(t);
  alignas(64) Codes codes;
  alignas(64) int32_t sc[kRows][16];
  alignas(64) int32_t pairs[kRows][8];  // (scales 2k, 2k + 1) int16 pairs, for the offset
  for (int64_t s0 = 0; s0 < nb; s0 += act.SliceBlocks()) {
    const int64_t s1 = std::min<int64_t>(nb, s0 + act.SliceBlocks());
    const WideBlock* xs = act.Slice(s0, s1);
    for (int64_t r = r0; r < r1; r += kRows) {
      const BlockQ6_K* w[kRows];
      StepRows<G>(t, r, r1, w);
      __m512 acc[kRows];
      LoadAcc(t, r, r1, s0 == 0, acc);
      for (int64_t b = s0; b < s1; ++b) {
        PrefetchStream<G>(w[0], b);
        const int64_t i = b - s0;
        const BlockQ6_K* wb[kRows];
        for (int k = 0; k < kRows; ++k) {
          wb[k] = &w[k][b * G];
          __m512i c[4];
          UnpackQ6KOrdered(*wb[k], c);  // already in value order
          auto* dst = reinterpret_cast<__m512i*>(codes[k]);
          for (int v = 0; v < 4; ++v) _mm512_store_si512(dst + v, c[v]);
          const __m128i sb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[k]->scales));
          _mm512_store_si512(sc[k], _mm512_cvtepi8_epi32(sb));
          _mm256_store_si256(reinterpret_cast<__m256i*>(pairs[k]), _mm256_cvtepi8_epi16(sb));
        }
        __m512i tot[kRows];
        for (int k = 0; k < kRows; ++k) tot[k] = _mm512_setzero_si512();
        DotRows<4>(codes, sc, xs[i].x, tot);
        const __m512 xd = _mm512_loadu_ps(xs[i].xd);
        for (int k = 0; k < kRows; ++k) {
          // The codes are 0..63 for values code - 32: less 32 x sum_g scale_g x bsums_g.
          const __m512i off = PairSums<8>(pairs[k], xs[i].bs);
          const __m512i isum = _mm512_sub_epi32(tot[k], _mm512_slli_epi32(off, 5));
          acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(HalfToFloat(wb[k]->d)), xd),
                                   _mm512_cvtepi32_ps(isum), acc[k]);
        }
      }
      StoreAcc(t, r, r1, acc);
    }
  }
}

}  // namespace

size_t KQuantActTableBytes(int64_t n_in) {
  return static_cast<size_t>(n_in / 256) * sizeof(BlockQ8_K);
}

void FillKQuantActTable(const uint8_t* xq, size_t xq_stride, int nt, int64_t n_in, uint8_t* dst) {
  const BlockQ8_K* x[kTokens];
  TileTokens(xq, xq_stride, nt, x);
  FillBlocks(x, 0, n_in / 256, reinterpret_cast<WideBlock*>(dst));
}

MatMulTileFn MatMulTileKernelKWide(DType wtype, bool interleaved) {
  switch (wtype) {
    case DType::kQ4_K:
      return interleaved ? &WideQ45K<BlockQ4_K, false, kRepackRows>
                         : &WideQ45K<BlockQ4_K, false, 1>;
    case DType::kQ5_K:
      return interleaved ? &WideQ45K<BlockQ5_K, true, kRepackRows> : &WideQ45K<BlockQ5_K, true, 1>;
    case DType::kQ6_K:
      return interleaved ? &WideQ6K<kRepackRows> : &WideQ6K<1>;
    default:
      return nullptr;
  }
}

}  // namespace gannet::cpu::avx512
