// The AVX-512 (F/BW/VL) + VNNI matmul target: its dispatch (which weight types have a kernel of
// their own here; every other type runs the AVX2 kernel inside this target, matmul.cc) and the
// Q8_0 row-block kernel.
//
// Q8_0 has the structure of the AVX2 row-block kernel (matmul_avx2.cc, Rows4Tile): 4 weight rows
// per step, the four rows' products with one token's block reduced so that row k's half-block
// sums land in lane k of each 128-bit half, then one convert and one FMA with [dw_k * dx] for the
// four rows. The integer products differ: AVX2 needs sign + maddubs + madd per (row, token,
// block) for signed x signed bytes; here the weight codes are made unsigned once per (row,
// block) by flipping their sign bit (w ^ 0x80 = w + 128 as u8) and each (row, token, block) is
// one vpdpbusd (256-bit VL form), the surplus 128 * sum(x) of each half block subtracted from the
// four rows at once (a per-token table, filled once per pass). Exact for every code and
// activation, -128 included.
//
// Bits: the int32 half-block sums are exact, and the f32 steps are those of the AVX2 kernel
// (convert, scale dw * dx, FMA into the half's lane, the two halves added at the end), so a row
// has the same bits here as there, whatever the batch.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 intrinsics: see the K-quant file
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx512 {
namespace {

static inline float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }
static inline __m256i Load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Per pass (as the AVX2 kernel's activation table): the surplus [nt][nb] x [lo x 4 | hi x 4]
// int32 (128 * the half block's sum of codes), then dx [nt][nb] f32.
constexpr size_t kActTableBytes = 64 * 1024;
constexpr size_t kTableBytesPerBlock = 8 * sizeof(int32_t) + sizeof(float);
// Row groups ahead that the kernel prefetches (the AVX2 kernel's figure).
constexpr int64_t kPrefetchGroups = 2;

struct ActTable {
  const int32_t* surplus = nullptr;
  const float* dx = nullptr;
  int64_t nb = 0;
};

ActTable FillActTable(const MatMulTile& t, unsigned char* buf) {
  ActTable tab;
  tab.nb = t.n_in / 32;
  const int64_t n = t.nt * tab.nb;
  auto* surplus = reinterpret_cast<int32_t*>(buf);
  auto* dx = reinterpret_cast<float*>(buf + 8 * sizeof(int32_t) * n);
  const __m256i ones = _mm256_set1_epi8(1);
  for (int j = 0; j < t.nt; ++j) {
    const auto* x = reinterpret_cast<const BlockQ8_0*>(t.xq + j * t.xq_stride);
    for (int64_t b = 0; b < tab.nb; ++b) {
      dx[j * tab.nb + b] = HalfToFloat(x[b].d);
      __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, Load256(x[b].qs));
      s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4E));  // within each 128-bit half
      s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xB1));
      _mm256_store_si256(reinterpret_cast<__m256i*>(surplus + (j * tab.nb + b) * 8),
                         _mm256_slli_epi32(s, 7));
    }
  }
  tab.surplus = surplus;
  tab.dx = dx;
  return tab;
}

// [d0 d1 d2 d3 | d0 d1 d2 d3] as f32 from four f16 scales.
static inline __m256 RowScales4(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3) {
  const uint64_t packed = d0 | uint64_t{d1} << 16 | uint64_t{d2} << 32 | uint64_t{d3} << 48;
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(packed)));
  return _mm256_set_m128(f, f);
}

// acc[u] += the block-b products of the four rows' unsigned codes q with tokens j0 .. j0 + U - 1.
template <int U>
static inline void AccumulateTokens(const __m256i q[4], __m256 dw, const MatMulTile& t,
                                    const ActTable& tab, int j0, int64_t b, __m256* acc) {
  __m256i s[U];
  for (int u = 0; u < U; ++u) {
    const __m256i xq =
        Load256(reinterpret_cast<const BlockQ8_0*>(t.xq + (j0 + u) * t.xq_stride)[b].qs);
    const __m256i z = _mm256_setzero_si256();
    const __m256i p0 = _mm256_dpbusd_epi32(z, q[0], xq), p1 = _mm256_dpbusd_epi32(z, q[1], xq);
    const __m256i p2 = _mm256_dpbusd_epi32(z, q[2], xq), p3 = _mm256_dpbusd_epi32(z, q[3], xq);
    s[u] = _mm256_sub_epi32(_mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3)),
                            _mm256_load_si256(reinterpret_cast<const __m256i*>(
                                tab.surplus + ((j0 + u) * tab.nb + b) * 8)));
  }
  for (int u = 0; u < U; ++u) {
    const __m256 scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(tab.dx + (j0 + u) * tab.nb + b));
    acc[u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[u]), scale, acc[u]);
  }
}

// Rows [r0, r1) in groups of four for NT tokens (NT == 0: t.nt <= kMatMulWideTileTokens, two
// tokens at a time). A last group of fewer than 4 rows repeats its last row in the missing lanes
// and stores only its own rows.
template <int NT>
void Rows4Tile(const MatMulTile& t, const ActTable& tab, int64_t r0, int64_t r1) {
  constexpr int kAcc = NT > 0 ? NT : kMatMulWideTileTokens;
  const int nt = NT > 0 ? NT : t.nt;
  const int64_t nb = tab.nb;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t r = r0; r < r1; r += 4) {
    const int n_rows = static_cast<int>(std::min<int64_t>(4, r1 - r));
    const BlockQ8_0* w[4];
    for (int k = 0; k < 4; ++k) {
      w[k] = reinterpret_cast<const BlockQ8_0*>(
          t.w + static_cast<size_t>(r + std::min(k, n_rows - 1)) * t.w_row_bytes);
    }
    __m256 acc[kAcc];
    for (int j = 0; j < nt; ++j) acc[j] = _mm256_setzero_ps();
    // The four rows are one contiguous span read as four interleaved streams: fetch the group
    // kPrefetchGroups ahead, 4 blocks' bytes per step (a hint; cannot fault).
    const char* ahead = reinterpret_cast<const char*>(w[0]) + kPrefetchGroups * 4 * t.w_row_bytes;
    static_assert(4 * sizeof(BlockQ8_0) <= 3 * 64);
    for (int64_t b = 0; b < nb; ++b) {
      const char* pf = ahead + static_cast<size_t>(b) * 4 * sizeof(BlockQ8_0);
      _mm_prefetch(pf, _MM_HINT_T0);
      _mm_prefetch(pf + 64, _MM_HINT_T0);
      _mm_prefetch(pf + 128, _MM_HINT_T0);
      __m256i q[4];
      for (int k = 0; k < 4; ++k) q[k] = _mm256_xor_si256(Load256(w[k][b].qs), flip);
      const __m256 dw = RowScales4(w[0][b].d, w[1][b].d, w[2][b].d, w[3][b].d);
      if constexpr (NT > 0) {
        AccumulateTokens<NT>(q, dw, t, tab, 0, b, acc);
      } else {
        int j = 0;
        for (; j + 2 <= nt; j += 2) AccumulateTokens<2>(q, dw, t, tab, j, b, acc + j);
        if (j < nt) AccumulateTokens<1>(q, dw, t, tab, j, b, acc + j);
      }
    }
    for (int j = 0; j < nt; ++j) {
      const __m128 sum =
          _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
      if (n_rows == 4) {
        _mm_storeu_ps(t.y + j * t.y_stride + r, sum);
      } else {
        float lanes[4];
        _mm_storeu_ps(lanes, sum);
        for (int k = 0; k < n_rows; ++k) t.y[j * t.y_stride + r + k] = lanes[k];
      }
    }
  }
}

// Any t.nt <= kMatMulWideTileTokens, in passes whose table fits kActTableBytes. A width whose
// one-token table does not fit (beyond 58k inputs) runs the AVX2 kernel (the same bits).
void TileQ8_0(const MatMulTile& t, int64_t r0, int64_t r1) {
  const size_t token_bytes = static_cast<size_t>(t.n_in / 32) * kTableBytesPerBlock;
  if (token_bytes > kActTableBytes) return avx2::MatMulTileKernel(DType::kQ8_0)(t, r0, r1);
  alignas(32) unsigned char buf[kActTableBytes];
  const int pass = static_cast<int>(std::min<size_t>(t.nt, kActTableBytes / token_bytes));
  for (int j0 = 0; j0 < t.nt; j0 += pass) {
    MatMulTile s = t;
    s.nt = std::min(pass, t.nt - j0);
    s.xq = t.xq + j0 * t.xq_stride;
    s.y = t.y + j0 * t.y_stride;
    const ActTable tab = FillActTable(s, buf);
    switch (s.nt) {
      case 1:
        Rows4Tile<1>(s, tab, r0, r1);
        break;
      case 2:
        Rows4Tile<2>(s, tab, r0, r1);
        break;
      case 3:
        Rows4Tile<3>(s, tab, r0, r1);
        break;
      case 4:
        Rows4Tile<4>(s, tab, r0, r1);
        break;
      default:
        Rows4Tile<0>(s, tab, r0, r1);
        break;
    }
  }
}

}  // namespace

MatMulTileFn MatMulTileKernel(DType wtype) {
  if (wtype == DType::kQ8_0) return &TileQ8_0;
  if (const MatMulTileFn f = MatMulTileKernel32(wtype)) return f;
  return MatMulTileKernelK(wtype);
}

int MatMulTileTokens(DType wtype) {
  switch (wtype) {
    case DType::kQ8_0:
      return kMatMulWideTileTokens;
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
      return MatMulTileKernel32(wtype) != nullptr ? kMatMulWideTileTokens : kMatMulTileTokens;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return kMatMulKQuantTileTokens;
    default:
      return kMatMulTileTokens;
  }
}

}  // namespace gannet::cpu::avx512
