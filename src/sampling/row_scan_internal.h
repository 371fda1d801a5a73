// Internal to row_scan: one CPU target's row scans (row_scan_lanes.h), for the dispatch in
// row_scan.cc and for the test that holds every target to the baseline's results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gannet::sampling::internal {

struct RowScans {
  const char* target;
  // row_scan.h's ArgmaxUsable and MaxUsable over x[0, n).
  int32_t (*argmax)(const float* x, size_t n);
  float (*max)(const float* x, size_t n);
  // The sum over x[0, n) of exp((x - max) * s) in double (row_scan.h, SumTemperedExp).
  double (*sum_tempered_exp)(const float* x, size_t n, float max, float s);
  // out[i] = exp((x[i] - max) * s) for i < n (row_scan.h, TemperedExps).
  void (*tempered_exps)(const float* x, size_t n, float max, float s, float* out);
};

RowScans BaselineRowScans();
RowScans Avx2RowScans();    // REQUIRES: the CPU has AVX2
RowScans Avx512RowScans();  // REQUIRES: the CPU has AVX-512 F, BW, DQ and VL

// The targets this CPU runs, the baseline first and the fastest last (probed once).
const std::vector<RowScans>& AvailableRowScans();

}  // namespace gannet::sampling::internal
