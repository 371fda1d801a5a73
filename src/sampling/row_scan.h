// Whole-row scans over a position's logits (262144 of them for Gemma 3), on every sampled token's
// path: the argmax, the largest value, whether a span holds a value above a bar, and the sums and
// terms of exponentials that an untruncated draw, top_p and the log-softmax need. Written with
// GCC/Clang vector types, no ISA intrinsics (those stay in kernels/): a scalar loop carries one
// running value from element to element, about one element per cycle, and a row of 1 MiB then
// takes ~200 us where these take ~20-50. The argmax, the max and the exponentials are compiled
// for each CPU target and the fastest one the CPU has is picked once (row_scan_lanes.h); every
// target gives the same results, the exponentials to the bit.
//
// Usable logits are those > -infinity (NaN compares false and is never usable).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

namespace gannet::sampling {

// First index of the largest usable logit, or 0 when there is none (the plain loop's answer:
// equal maxima go to the lowest index).
int32_t ArgmaxUsable(std::span<const float> logits);

// The largest usable logit, or -infinity when there is none.
float MaxUsable(std::span<const float> logits);

// Logits per AnyAbove test.
inline constexpr size_t kScanSpan = 32;
// Whether any of x[0, kScanSpan) is > threshold.
bool AnyAbove(const float* x, float threshold);

// Calls visit(id, logit) for the usable logits in id order, as a bounded top-n heap's scan sees
// them, except that while full() is true a span of kScanSpan logits with none above bar() is
// passed over: the caller's bar (its heap's worst kept logit) only rises, so its scan would pass
// over every logit of it too. On a 262144-token vocabulary and n of 40, all but a few hundred
// spans are passed over after one vector test.
template <class Full, class Bar, class Visit>
void ScanForTop(std::span<const float> logits, Full&& full, Bar&& bar, Visit&& visit) {
  const size_t n = logits.size();
  for (size_t i = 0; i < n;) {
    if (i + kScanSpan <= n && full() && !AnyAbove(logits.data() + i, bar())) {
      i += kScanSpan;
      continue;
    }
    for (const size_t end = i + kScanSpan < n ? i + kScanSpan : n; i < end; ++i) {
      const float l = logits[i];
      if (l > -std::numeric_limits<float>::infinity()) visit(static_cast<int32_t>(i), l);
    }
  }
}

// The sum over usable logits l of exp(l - max), in double. REQUIRES: max >= every usable logit
// and max finite. Each term is exp in float to within ~2 ulp (a degree-7 polynomial after a
// Cody-Waite reduction; terms below e^-87 count as 0, against a sum of at least 1), summed in
// double, so the sum's relative error is ~1e-7: the log-softmax it normalizes is reported in
// float.
double SumExpBelow(std::span<const float> logits, float max);

// The untruncated draw's weights: exp((l - max) * inv_t) for one logit (TemperedExp) and their
// sum over a span's usable logits in double (SumTemperedExp), each term as TemperedExp gives it,
// to the bit. The product is formed in float with inv_t capped at the largest float, so a tiny
// temperature gives 1 for the maximum and 0 for the rest (never 0 * inf = NaN); terms below e^-87
// count as 0. REQUIRES: max >= every usable logit, max finite, inv_t > 0.
float TemperedExp(float logit, float max, double inv_t);
double SumTemperedExp(std::span<const float> logits, float max, double inv_t);
// out[i] = TemperedExp(x[i], max, inv_t) for i < n, to the bit; out may be x.
void TemperedExps(const float* x, size_t n, float max, double inv_t, float* out);

}  // namespace gannet::sampling
