// AVX2 + FMA + F16C matmul tiles for the 32-value block types (integer dot products against
// Q8_0 / Q8_1 activations) and for f32 / f16 / bf16 weights (f32 FMA against f32 activations).
// See avx2_common.h for the rule that keeps this file's code out of baseline callers.
#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/matmul_internal.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu::avx2 {
namespace {

// Per-type access to a weight block's 32 codes. kSigned: codes are centred int8 (the scale
// alone dequantizes them); otherwise unsigned with an additive min (m * activation sum).
struct Q4_0Codes {
  using Block = BlockQ4_0;
  using Act = BlockQ8_0;
  static constexpr bool kSigned = true;
  static __m256i Codes(const Block& b) {
    return _mm256_sub_epi8(UnpackNibbles16(b.qs), _mm256_set1_epi8(8));
  }
};
struct Q5_0Codes {
  using Block = BlockQ5_0;
  using Act = BlockQ8_0;
  static constexpr bool kSigned = true;
  static __m256i Codes(const Block& b) {
    // nibble | bit << 4, minus 16: where the 5th bit is clear, nibble - 16 == nibble | 0xF0.
    const __m256i high_clear = _mm256_andnot_si256(ExpandBits32(b.qh), _mm256_set1_epi8(static_cast<char>(0xF0)));
    return _mm256_or_si256(UnpackNibbles16(b.qs), high_clear);
  }
};
struct Q8_0Codes {
  using Block = BlockQ8_0;
  using Act = BlockQ8_0;
  static constexpr bool kSigned = true;
  static __m256i Codes(const Block& b) { return LoadU256(b.qs); }
};
struct Q4_1Codes {
  using Block = BlockQ4_1;
  using Act = BlockQ8_1;
  static constexpr bool kSigned = false;
  static __m256i Codes(const Block& b) { return UnpackNibbles16(b.qs); }
};
struct Q5_1Codes {
  using Block = BlockQ5_1;
  using Act = BlockQ8_1;
  static constexpr bool kSigned = false;
  static __m256i Codes(const Block& b) {
    const __m256i high = _mm256_and_si256(ExpandBits32(b.qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(UnpackNibbles16(b.qs), high);
  }
};

template <class T, int NT>
void Tile32(const MatMulTile& t, int64_t r0, int64_t r1) {
  using Block = typename T::Block;
  using Act = typename T::Act;
  // One accumulator per token whatever NT is: a token's sum must not depend on the tile it is in
  // (batch invariance, see HorizontalSum4 below).
  constexpr int kAcc = 1;
  const int64_t nb = t.n_in / 32;
  const Act* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const Act*>(t.xq + j * t.xq_stride);
  for (int64_t r = r0; r < r1; ++r) {
    const Block* w = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    __m256 acc[NT * kAcc];
    float min_acc[NT];
    for (int j = 0; j < NT * kAcc; ++j) acc[j] = _mm256_setzero_ps();
    for (int j = 0; j < NT; ++j) min_acc[j] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i q = T::Codes(w[b]);
      const float dw = HalfToFloat(w[b].d);
      const int slot = kAcc == 2 ? static_cast<int>(b & 1) : 0;
      if constexpr (T::kSigned) {
        const __m256i q_abs = _mm256_sign_epi8(q, q);
        for (int j = 0; j < NT; ++j) {
          const __m256i s = DotI8(q_abs, q, LoadU256(x[j][b].qs));
          const __m256 scale = _mm256_set1_ps(dw * HalfToFloat(x[j][b].d));
          acc[j * kAcc + slot] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[j * kAcc + slot]);
        }
      } else {
        const float mw = HalfToFloat(w[b].m);
        for (int j = 0; j < NT; ++j) {
          const __m256i s = DotU8(q, LoadU256(x[j][b].qs));
          const __m256 scale = _mm256_set1_ps(dw * HalfToFloat(x[j][b].d));
          acc[j * kAcc + slot] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[j * kAcc + slot]);
          min_acc[j] += mw * HalfToFloat(x[j][b].s);
        }
      }
    }
    for (int j = 0; j < NT; ++j) {
      __m256 a = acc[j * kAcc];
      if (kAcc == 2) a = _mm256_add_ps(a, acc[j * kAcc + 1]);
      t.y[j * t.y_stride + r] = HorizontalSum(a) + min_acc[j];
    }
  }
}

// Float weights: 8 values per step as f32.
struct F32Weights {
  using Elem = float;
  static __m256 Load(const float* p) { return _mm256_loadu_ps(p); }
  static float One(const float* p) { return *p; }
};
struct F16Weights {
  using Elem = uint16_t;
  static __m256 Load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float One(const uint16_t* p) { return HalfToFloat(*p); }
};
struct BF16Weights {
  using Elem = uint16_t;
  static __m256 Load(const uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float One(const uint16_t* p) {
    const uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
};

template <class T, int NT>
void TileFloat(const MatMulTile& t, int64_t r0, int64_t r1) {
  using Elem = typename T::Elem;
  const int64_t n = t.n_in;
  const float* x[NT];
  for (int j = 0; j < NT; ++j) x[j] = reinterpret_cast<const float*>(t.xq + j * t.xq_stride);
  for (int64_t r = r0; r < r1; ++r) {
    const Elem* w = reinterpret_cast<const Elem*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    __m256 acc0[NT], acc1[NT];
    for (int j = 0; j < NT; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256 w0 = T::Load(w + i), w1 = T::Load(w + i + 8);
      for (int j = 0; j < NT; ++j) {
        acc0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[j] + i), acc0[j]);
        acc1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[j] + i + 8), acc1[j]);
      }
    }
    for (; i + 8 <= n; i += 8) {
      const __m256 w0 = T::Load(w + i);
      for (int j = 0; j < NT; ++j) acc0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[j] + i), acc0[j]);
    }
    for (int j = 0; j < NT; ++j) {
      float sum = HorizontalSum(_mm256_add_ps(acc0[j], acc1[j]));
      for (int64_t k = i; k < n; ++k) sum += T::One(w + k) * x[j][k];
      t.y[j * t.y_stride + r] = sum;
    }
  }
}

// Decode (one token) for the signed 32-value types: four weight rows per pass share each
// activation block load and its scale, and their four sums are reduced together at the end.
// This is the shape of the output layer of small-embedding models (e.g. 262144 x 640 Q8_0),
// where the per-row horizontal sum and the activation scale conversions otherwise dominate.
constexpr int64_t kGemvMaxBlocks = 1024;
// How many 4-row groups ahead the GEMV prefetches. Measured on the 262144 x 640 Q8_0 output
// matrix of Gemma 3 270M (one thread): 40 ms without, 20 ms at 1 or 2 groups ahead.
constexpr int64_t kPrefetchGroups = 2;

// The four horizontal sums of acc[0..3], each added in exactly HorizontalSum's order (lanes i and
// i + 4, then 0 + 2 and 1 + 3, then those two), so a row decoded here gets the same bits as in
// Tile32: a request's logits do not depend on whether it is decoded alone or in a batch.
static inline __m128 HorizontalSum4(const __m256 acc[4]) {
  __m128 v[4];
  for (int k = 0; k < 4; ++k) v[k] = _mm_add_ps(_mm256_castps256_ps128(acc[k]), _mm256_extractf128_ps(acc[k], 1));
  // [v0.0 + v0.2, v1.0 + v1.2, v0.1 + v0.3, v1.1 + v1.3], and the same for rows 2 and 3.
  const __m128 u01 = _mm_add_ps(_mm_unpacklo_ps(v[0], v[1]), _mm_unpackhi_ps(v[0], v[1]));
  const __m128 u23 = _mm_add_ps(_mm_unpacklo_ps(v[2], v[3]), _mm_unpackhi_ps(v[2], v[3]));
  return _mm_add_ps(_mm_movelh_ps(u01, u23), _mm_movehl_ps(u23, u01));
}

template <class T>
void Gemv32Rows4(const MatMulTile& t, int64_t r0, int64_t r1) {
  using Block = typename T::Block;
  using Act = typename T::Act;
  const int64_t nb = t.n_in / 32;
  const Act* x = reinterpret_cast<const Act*>(t.xq);
  float xd[kGemvMaxBlocks];
  for (int64_t b = 0; b < nb; ++b) xd[b] = HalfToFloat(x[b].d);
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    const Block* w[4];
    for (int k = 0; k < 4; ++k) w[k] = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r + k) * t.w_row_bytes);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const char* ahead = reinterpret_cast<const char*>(w[0]) + kPrefetchGroups * 4 * t.w_row_bytes;
    const size_t group_bytes = 4 * t.w_row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i xq = LoadU256(x[b].qs);
      // The four rows are one contiguous span read as four interleaved streams, which the
      // hardware prefetchers follow poorly; fetch the span kPrefetchGroups groups ahead in
      // step with this one (group_bytes / nb bytes per block step).
      const size_t off = static_cast<size_t>(b) * group_bytes / static_cast<size_t>(nb);
      _mm_prefetch(ahead + off, _MM_HINT_T0);
      _mm_prefetch(ahead + off + 64, _MM_HINT_T0);
      _mm_prefetch(ahead + off + 128, _MM_HINT_T0);
      for (int k = 0; k < 4; ++k) {
        const __m256i q = T::Codes(w[k][b]);
        const __m256i s = DotI8(_mm256_sign_epi8(q, q), q, xq);
        const __m256 scale = _mm256_set1_ps(HalfToFloat(w[k][b].d) * xd[b]);
        acc[k] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[k]);
      }
    }
    _mm_storeu_ps(t.y + r, HorizontalSum4(acc));
  }
  if (r < r1) Tile32<T, 1>(t, r, r1);
}

template <class T>
void Tile32Any(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1:
      if constexpr (T::kSigned) {
        if (t.n_in / 32 <= kGemvMaxBlocks) return Gemv32Rows4<T>(t, r0, r1);
      }
      return Tile32<T, 1>(t, r0, r1);
    case 2: return Tile32<T, 2>(t, r0, r1);
    case 3: return Tile32<T, 3>(t, r0, r1);
    default: return Tile32<T, 4>(t, r0, r1);
  }
}

template <class T>
void TileFloatAny(const MatMulTile& t, int64_t r0, int64_t r1) {
  switch (t.nt) {
    case 1: return TileFloat<T, 1>(t, r0, r1);
    case 2: return TileFloat<T, 2>(t, r0, r1);
    case 3: return TileFloat<T, 3>(t, r0, r1);
    default: return TileFloat<T, 4>(t, r0, r1);
  }
}

static_assert(kMatMulTileTokens == 4, "the tile dispatchers above handle up to 4 tokens");

}  // namespace

MatMulTileFn MatMulTileKernel(DType wtype) {
  switch (wtype) {
    case DType::kF32: return &TileFloatAny<F32Weights>;
    case DType::kF16: return &TileFloatAny<F16Weights>;
    case DType::kBF16: return &TileFloatAny<BF16Weights>;
    case DType::kQ4_0: return &Tile32Any<Q4_0Codes>;
    case DType::kQ4_1: return &Tile32Any<Q4_1Codes>;
    case DType::kQ5_0: return &Tile32Any<Q5_0Codes>;
    case DType::kQ5_1: return &Tile32Any<Q5_1Codes>;
    case DType::kQ8_0: return &Tile32Any<Q8_0Codes>;
    default: return MatMulTileKernelK(wtype);
  }
}

}  // namespace gannet::cpu::avx2
