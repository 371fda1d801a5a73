#include "sampling/row_scan.h"

#include <algorithm>
#include <limits>

#include "sampling/row_scan_internal.h"
#include "sampling/row_scan_lanes.h"

namespace gannet::sampling {
namespace {

// The fastest target's row scans, picked once.
const internal::RowScans& Scans() {
  static const internal::RowScans best = internal::AvailableRowScans().back();
  return best;
}

inline float CappedInverse(double inv_t) {
  return static_cast<float>(
      std::min(inv_t, static_cast<double>(std::numeric_limits<float>::max())));
}

}  // namespace

int32_t ArgmaxUsable(std::span<const float> logits) {
  return Scans().argmax(logits.data(), logits.size());
}

float MaxUsable(std::span<const float> logits) { return Scans().max(logits.data(), logits.size()); }

bool AnyAbove(const float* x, float threshold) {
  using L = Lanes<4>;  // one span: too short for a call through the table
  const L::F32 t = L::Splat(threshold);
  L::I32 any = L::I32{};
  for (size_t i = 0; i < kScanSpan; i += 4) any |= L::Load(x + i) > t;
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

RowScans BaselineRowScans() {
  return {.target = "baseline",
          .argmax = &Lanes<4>::Argmax,
          .max = &Lanes<4>::Max,
          .sum_tempered_exp = &Lanes<4>::SumTemperedExp,
          .tempered_exps = &Lanes<4>::TemperedExps};
}

const std::vector<RowScans>& AvailableRowScans() {
  static const std::vector<RowScans> scans = [] {
    std::vector<RowScans> v = {BaselineRowScans()};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) v.push_back(Avx2RowScans());
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
      v.push_back(Avx512RowScans());
    }
    return v;
  }();
  return scans;
}

}  // namespace internal

}  // namespace gannet::sampling
