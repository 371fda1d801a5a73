#include "sampling/row_scan.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "sampling/row_scan_internal.h"
#include "sampling/row_scan_lanes.h"

namespace gannet::sampling {
namespace {

using F32x4 = float __attribute__((vector_size(16)));
using I32x4 = int32_t __attribute__((vector_size(16)));

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline F32x4 Load(const float* p) {
  F32x4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline F32x4 Splat(float x) { return F32x4{} + x; }

// The fastest target's exponential scans, picked once.
const internal::ExpScans& Scans() {
  static const internal::ExpScans best = internal::AvailableExpScans().back();
  return best;
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
  // (x - max) * 1 is x - max, to the bit, NaN and infinities included.
  return Scans().sum_tempered_exp(logits.data(), logits.size(), max, 1.0f);
}

float TemperedExp(float logit, float max, double inv_t) {
  using L = Lanes<4>;
  return L::TemperedExp(L::Splat(logit), L::Splat(max), L::Splat(CappedInverse(inv_t)))[0];
}

double SumTemperedExp(std::span<const float> logits, float max, double inv_t) {
  return Scans().sum_tempered_exp(logits.data(), logits.size(), max, CappedInverse(inv_t));
}

void TemperedExps(const float* x, size_t n, float max, double inv_t, float* out) {
  Scans().tempered_exps(x, n, max, CappedInverse(inv_t), out);
}

namespace internal {

ExpScans BaselineExpScans() {
  return {.target = "baseline",
          .sum_tempered_exp = &Lanes<4>::SumTemperedExp,
          .tempered_exps = &Lanes<4>::TemperedExps};
}

const std::vector<ExpScans>& AvailableExpScans() {
  static const std::vector<ExpScans> scans = [] {
    std::vector<ExpScans> v = {BaselineExpScans()};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) v.push_back(Avx2ExpScans());
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
      v.push_back(Avx512ExpScans());
    }
    return v;
  }();
  return scans;
}

}  // namespace internal

}  // namespace gannet::sampling
