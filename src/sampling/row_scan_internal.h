// Internal to row_scan: one CPU target's exponential scans (row_scan_lanes.h), for the dispatch
// in row_scan.cc and for the test that holds every target to the baseline's bits.
#pragma once

#include <cstddef>
#include <vector>

namespace gannet::sampling::internal {

struct ExpScans {
  const char* target;
  // The sum over x[0, n) of exp((x - max) * s) in double (row_scan.h, SumTemperedExp).
  double (*sum_tempered_exp)(const float* x, size_t n, float max, float s);
  // out[i] = exp((x[i] - max) * s) for i < n (row_scan.h, TemperedExps).
  void (*tempered_exps)(const float* x, size_t n, float max, float s, float* out);
};

ExpScans BaselineExpScans();
ExpScans Avx2ExpScans();    // REQUIRES: the CPU has AVX2
ExpScans Avx512ExpScans();  // REQUIRES: the CPU has AVX-512 F, BW, DQ and VL

// The targets this CPU runs, the baseline first and the fastest last (probed once).
const std::vector<ExpScans>& AvailableExpScans();

}  // namespace gannet::sampling::internal
