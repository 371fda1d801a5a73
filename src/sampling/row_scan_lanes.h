// Internal to row_scan: the scans over a logit row (its argmax and max; the untruncated draw's
// weights and their sums, the log-softmax's normalizer), written once over GCC/Clang vector types
// of a native width W and compiled once per CPU target: row_scan.cc (W = 4, the baseline target's
// SSE2 registers), row_scan_avx2.cc (8) and row_scan_avx512.cc (16), each with its target's flags
// (src/CMakeLists.txt). A vector type wider than the target's registers is lowered through memory
// and runs slower than the narrow one, hence one width per target.
//
// Every target gives the same results, so that a seeded draw does not depend on the machine. The
// argmax and max are exact whatever the lanes (ties go to the lowest index, as a plain loop's
// strict > does). The exponentials give the same bits:
// - each element goes through the same IEEE operations in the same order (the sampling module is
//   compiled with -ffp-contract=off, so no target fuses a multiply and an add);
// - sums give element i of a 16-element group to double lane i % 16 whatever W is, and reduce the
//   16 lanes by one fixed tree at the end; a row's tail is a last group padded with -infinity,
//   whose terms are 0 and leave every lane as it was.
//
// Include only from those three files: everything here has internal linkage, so each target's
// file keeps its own copy, built with its own flags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

namespace gannet::sampling {
namespace {

// Elements per group: the double lanes a sum keeps, whatever the width.
constexpr size_t kGroup = 16;

// The vector types of width W (GCC drops a vector_size that depends on a template argument, so
// each width is spelled out).
template <int W>
struct VectorTypes;
#define GANNET_ROW_SCAN_VECTOR_TYPES(W)                                     \
  template <>                                                               \
  struct VectorTypes<W> {                                                   \
    typedef float F32 __attribute__((vector_size(4 * W)));                  \
    typedef int32_t I32 __attribute__((vector_size(4 * W)));                \
    typedef double F64 __attribute__((vector_size(4 * W)));     /* W / 2 */ \
    typedef double F64Wide __attribute__((vector_size(8 * W))); /* W */     \
  };
GANNET_ROW_SCAN_VECTOR_TYPES(4)
GANNET_ROW_SCAN_VECTOR_TYPES(8)
GANNET_ROW_SCAN_VECTOR_TYPES(16)
#undef GANNET_ROW_SCAN_VECTOR_TYPES

template <int W>
struct Lanes {
  using F32 = typename VectorTypes<W>::F32;
  using I32 = typename VectorTypes<W>::I32;
  using F64 = typename VectorTypes<W>::F64;
  using F64Wide = typename VectorTypes<W>::F64Wide;
  static constexpr int kVectors = static_cast<int>(kGroup) / W;

  static F32 Load(const float* p) {
    F32 v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static F32 Splat(float x) { return F32{} + x; }

  // First index of the largest usable (> -inf, not NaN) value of x[0, n), or 0 when there is
  // none. Two vectors of lanes, each keeping its best value and the first index that reached it
  // (strict >), merged at the end; the tail after every lane's indices, so strict > suffices.
  // REQUIRES: n < 2^31.
  static int32_t Argmax(const float* x, size_t n) {
    constexpr size_t kStep = 2 * W;
    const size_t body = n - n % kStep;
    F32 best_v[2] = {Splat(-std::numeric_limits<float>::infinity()),
                     Splat(-std::numeric_limits<float>::infinity())};
    I32 best_at[2] = {}, at[2];
    for (int v = 0; v < 2; ++v) {
      for (int lane = 0; lane < W; ++lane) at[v][lane] = v * W + lane;
    }
    for (size_t i = 0; i < body; i += kStep) {
      for (int v = 0; v < 2; ++v) {
        const F32 l = Load(x + i + v * W);
        const I32 greater = l > best_v[v];
        best_v[v] = greater ? l : best_v[v];
        best_at[v] = greater ? at[v] : best_at[v];
        at[v] += static_cast<int32_t>(kStep);
      }
    }
    int32_t best = 0;
    float best_logit = -std::numeric_limits<float>::infinity();
    for (int v = 0; v < 2; ++v) {
      for (int lane = 0; lane < W; ++lane) {
        const float l = best_v[v][lane];
        const int32_t id = best_at[v][lane];
        if (l > best_logit || (l == best_logit && id < best)) {
          best_logit = l;
          best = id;
        }
      }
    }
    for (size_t i = body; i < n; ++i) {
      if (x[i] > best_logit) {
        best_logit = x[i];
        best = static_cast<int32_t>(i);
      }
    }
    return best;
  }

  // The largest usable value of x[0, n), or -inf when there is none.
  static float Max(const float* x, size_t n) {
    constexpr size_t kStep = 2 * W;
    const size_t body = n - n % kStep;
    F32 m0 = Splat(-std::numeric_limits<float>::infinity()), m1 = m0;
    for (size_t i = 0; i < body; i += kStep) {
      const F32 a = Load(x + i), b = Load(x + i + W);
      m0 = a > m0 ? a : m0;
      m1 = b > m1 ? b : m1;
    }
    float m = -std::numeric_limits<float>::infinity();
    for (int lane = 0; lane < W; ++lane) {
      if (m0[lane] > m) m = m0[lane];
      if (m1[lane] > m) m = m1[lane];
    }
    for (size_t i = body; i < n; ++i) {
      if (x[i] > m) m = x[i];
    }
    return m;
  }

  // exp(x) for x in [-87, 0] (within ~2 ulp; exactly 1 at 0): x = n ln2 + r, |r| <= ln2 / 2,
  // with ln2 split in two so that n ln2 is exact to ~2^-32; e^r by its Taylor series to r^7
  // (remainder below 2^-26 relative) in Estrin's order (four independent pairs, then r^2 and
  // r^4: a dependency chain of 4 steps where Horner's has 7); 2^n put into the exponent bits.
  static F32 ExpNonPositive(F32 x) {
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2Hi = 0.693145751953125f;  // ln 2's first 16 bits: n * kLn2Hi is exact
    constexpr float kLn2Lo = 1.42860682030941723e-6f;
    constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const F32 t = x * kLog2e + kRound;
    const F32 n = t - kRound;
    const F32 r = (x - n * kLn2Hi) - n * kLn2Lo;
    const F32 r2 = r * r;
    const F32 r4 = r2 * r2;
    const F32 p01 = r + 1.0f;
    const F32 p23 = r * (1.0f / 6) + 0.5f;
    const F32 p45 = r * (1.0f / 120) + 1.0f / 24;
    const F32 p67 = r * (1.0f / 5040) + 1.0f / 720;
    const F32 p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67);
    // t's low mantissa bits hold n (two's complement, as t is within 2^22 of kRound).
    I32 t_bits, round_bits;
    std::memcpy(&t_bits, &t, sizeof(t));
    const F32 round = Splat(kRound);
    std::memcpy(&round_bits, &round, sizeof(round));
    const I32 scale_bits = (t_bits - round_bits + 127) << 23;
    F32 scale;
    std::memcpy(&scale, &scale_bits, sizeof(scale));
    return p * scale;
  }

  // exp((x - max) * s) where that is >= -87, else 0 (NaN and -inf included).
  static F32 TemperedExp(F32 x, F32 max, F32 s) {
    constexpr float kLowest = -87.0f;  // e^-87 ~ 1.6e-38, the float range's bottom
    const F32 y = (x - max) * s;
    const I32 counts = y >= Splat(kLowest);
    return counts ? ExpNonPositive(counts ? y : F32{}) : F32{};
  }

  // The low and high halves of e in double. Converted whole and then split: GCC turns that
  // into one conversion per register, where converting each half went through 128-bit pieces.
  template <int... I>
  static void Widen(F32 e, std::integer_sequence<int, I...>, F64* lo, F64* hi) {
    const F64Wide d = __builtin_convertvector(e, F64Wide);
    *lo = __builtin_shufflevector(d, d, I...);
    *hi = __builtin_shufflevector(d, d, (I + W / 2)...);
  }

  // One group's terms added to the 16 double lanes (acc[2v] holds lanes v W .. v W + W/2 - 1).
  static void AddGroup(const float* x, F32 max, F32 s, F64 acc[2 * kVectors]) {
    for (int v = 0; v < kVectors; ++v) {
      const F32 e = TemperedExp(Load(x + v * W), max, s);
      F64 lo, hi;
      Widen(e, std::make_integer_sequence<int, W / 2>{}, &lo, &hi);
      acc[2 * v] += lo;
      acc[2 * v + 1] += hi;
    }
  }

  static double SumTemperedExp(const float* x, size_t n, float max, float s) {
    const F32 m = Splat(max), sv = Splat(s);
    F64 acc[2 * kVectors] = {};
    const size_t body = n - n % kGroup;
    for (size_t i = 0; i < body; i += kGroup) AddGroup(x + i, m, sv, acc);
    if (body < n) {
      float tail[kGroup];
      for (size_t j = 0; j < kGroup; ++j) {
        tail[j] = body + j < n ? x[body + j] : -std::numeric_limits<float>::infinity();
      }
      AddGroup(tail, m, sv, acc);
    }
    double lane[kGroup];
    static_assert(sizeof(acc) == sizeof(lane));
    std::memcpy(lane, acc, sizeof(lane));
    for (size_t width = kGroup / 2; width >= 1; width /= 2) {
      for (size_t j = 0; j < width; ++j) lane[j] += lane[j + width];
    }
    return lane[0];
  }

  static void TemperedExps(const float* x, size_t n, float max, float s, float* out) {
    const F32 m = Splat(max), sv = Splat(s);
    const size_t body = n - n % W;
    for (size_t i = 0; i < body; i += W) {
      const F32 e = TemperedExp(Load(x + i), m, sv);
      std::memcpy(out + i, &e, sizeof(e));
    }
    if (body < n) {
      float tail[W];
      for (size_t j = 0; j < W; ++j) {
        tail[j] = body + j < n ? x[body + j] : -std::numeric_limits<float>::infinity();
      }
      const F32 e = TemperedExp(Load(tail), m, sv);
      std::memcpy(out + body, &e, (n - body) * sizeof(float));
    }
  }
};

}  // namespace
}  // namespace gannet::sampling
