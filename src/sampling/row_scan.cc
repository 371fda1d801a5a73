#include "sampling/row_scan.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace gannet::sampling {
namespace {

using F32x4 = float __attribute__((vector_size(16)));
using I32x4 = int32_t __attribute__((vector_size(16)));
using F64x2 = double __attribute__((vector_size(16)));

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline F32x4 Load(const float* p) {
  F32x4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline F32x4 Splat(float x) { return F32x4{} + x; }

// exp(x) for x in [-87, 0] (to within ~2 ulp; exact 1 at 0): x = n ln2 + r, |r| <= ln2 / 2, with
// ln2 split in two so n ln2 is exact to ~2^-32; e^r by its Taylor series to r^7 (remainder
// below 2^-26 relative); 2^n put into the exponent bits.
inline F32x4 ExpNonPositive(F32x4 x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // ln 2's first 16 bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723e-6f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const F32x4 t = x * kLog2e + kRound;
  const F32x4 n = t - kRound;
  const F32x4 r = (x - n * kLn2Hi) - n * kLn2Lo;
  F32x4 p = Splat(1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // t's low mantissa bits hold n (two's complement, as t is within 2^22 of kRound).
  I32x4 t_bits, round_bits;
  std::memcpy(&t_bits, &t, sizeof(t));
  const F32x4 round = Splat(kRound);
  std::memcpy(&round_bits, &round, sizeof(round));
  const I32x4 scale_bits = (t_bits - round_bits + 127) << 23;
  F32x4 scale;
  std::memcpy(&scale, &scale_bits, sizeof(scale));
  return p * scale;
}

constexpr float kLowest = -87.0f;  // e^-87 ~ 1.6e-38, the float range's bottom

// exp(y) where y >= kLowest, else 0 (NaN and -inf included).
inline F32x4 ExpOrZero(F32x4 y) {
  const I32x4 counts = y >= Splat(kLowest);
  return counts ? ExpNonPositive(counts ? y : F32x4{}) : F32x4{};
}

inline float CappedInverse(double inv_t) {
  return static_cast<float>(
      std::min(inv_t, static_cast<double>(std::numeric_limits<float>::max())));
}

}  // namespace

int32_t ArgmaxUsable(std::span<const float> logits) {
  // 8 interleaved lanes (two vectors; more spill the baseline target's 16 registers), each with
  // its own best and the first index that reached it (strict >), merged at the end.
  constexpr int kVecs = 2;
  constexpr size_t kStep = 4 * kVecs;
  const float* x = logits.data();
  const size_t n = logits.size();
  const size_t body = n - n % kStep;
  F32x4 best_v[kVecs];
  I32x4 best_at[kVecs], at[kVecs];
  for (int v = 0; v < kVecs; ++v) {
    best_v[v] = Splat(kNegInf);
    best_at[v] = I32x4{};
    at[v] = I32x4{0, 1, 2, 3} + 4 * v;
  }
  for (size_t i = 0; i < body; i += kStep) {
    for (int v = 0; v < kVecs; ++v) {
      const F32x4 l = Load(x + i + 4 * v);
      const I32x4 greater = l > best_v[v];
      best_v[v] = greater ? l : best_v[v];
      best_at[v] = greater ? at[v] : best_at[v];
      at[v] += static_cast<int32_t>(kStep);
    }
  }
  int32_t best = 0;
  float best_logit = kNegInf;
  for (int v = 0; v < kVecs; ++v) {
    for (int lane = 0; lane < 4; ++lane) {
      const float l = best_v[v][lane];
      const int32_t id = best_at[v][lane];
      if (l > best_logit || (l == best_logit && id < best)) {
        best_logit = l;
        best = id;
      }
    }
  }
  for (size_t i = body; i < n; ++i) {  // the tail: after every lane's ids, so strict > suffices
    if (x[i] > best_logit) {
      best_logit = x[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

float MaxUsable(std::span<const float> logits) {
  const float* x = logits.data();
  const size_t n = logits.size();
  const size_t body = n - n % 8;
  F32x4 m0 = Splat(kNegInf), m1 = m0;
  for (size_t i = 0; i < body; i += 8) {
    const F32x4 a = Load(x + i), b = Load(x + i + 4);
    m0 = a > m0 ? a : m0;
    m1 = b > m1 ? b : m1;
  }
  float m = kNegInf;
  for (int lane = 0; lane < 4; ++lane) {
    if (m0[lane] > m) m = m0[lane];
    if (m1[lane] > m) m = m1[lane];
  }
  for (size_t i = body; i < n; ++i) {
    if (x[i] > m) m = x[i];
  }
  return m;
}

bool AnyAbove(const float* x, float threshold) {
  const F32x4 t = Splat(threshold);
  I32x4 any = I32x4{};
  for (size_t i = 0; i < kScanSpan; i += 4) any |= Load(x + i) > t;
  return (any[0] | any[1] | any[2] | any[3]) != 0;
}

double SumExpBelow(std::span<const float> logits, float max) {
  const float* x = logits.data();
  const size_t n = logits.size();
  const size_t body = n - n % 4;
  const F32x4 m = Splat(max);
  F64x2 sum_lo = F64x2{}, sum_hi = F64x2{};
  for (size_t i = 0; i < body; i += 4) {
    const F32x4 e = ExpOrZero(Load(x + i) - m);  // NaN and -inf logits give NaN and -inf: 0
    sum_lo += F64x2{e[0], e[1]};
    sum_hi += F64x2{e[2], e[3]};
  }
  double sum = (sum_lo[0] + sum_lo[1]) + (sum_hi[0] + sum_hi[1]);
  for (size_t i = body; i < n; ++i) sum += ExpOrZero(Splat(x[i] - max))[0];
  return sum;
}

float TemperedExp(float logit, float max, double inv_t) {
  return ExpOrZero((Splat(logit) - max) * CappedInverse(inv_t))[0];
}

double SumTemperedExp(std::span<const float> logits, float max, double inv_t) {
  const float* x = logits.data();
  const size_t n = logits.size();
  const size_t body = n - n % 4;
  const F32x4 m = Splat(max), s = Splat(CappedInverse(inv_t));
  F64x2 sum_lo = F64x2{}, sum_hi = F64x2{};
  for (size_t i = 0; i < body; i += 4) {
    const F32x4 e = ExpOrZero((Load(x + i) - m) * s);
    sum_lo += F64x2{e[0], e[1]};
    sum_hi += F64x2{e[2], e[3]};
  }
  double sum = (sum_lo[0] + sum_lo[1]) + (sum_hi[0] + sum_hi[1]);
  for (size_t i = body; i < n; ++i) sum += TemperedExp(x[i], max, inv_t);
  return sum;
}

void TemperedExps(const float* x, size_t n, float max, double inv_t, float* out) {
  const size_t body = n - n % 4;
  const F32x4 m = Splat(max), s = Splat(CappedInverse(inv_t));
  for (size_t i = 0; i < body; i += 4) {
    const F32x4 e = ExpOrZero((Load(x + i) - m) * s);
    std::memcpy(out + i, &e, sizeof(e));
  }
  for (size_t i = body; i < n; ++i) out[i] = TemperedExp(x[i], max, inv_t);
}

}  // namespace gannet::sampling
