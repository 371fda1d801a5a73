// The row scans of row_scan for the AVX-512 target: row_scan_lanes.h at 16 floats per
// vector. Compiled with the target's flags (src/CMakeLists.txt); called only where the CPU has it.
#include "sampling/row_scan_internal.h"
#include "sampling/row_scan_lanes.h"

namespace gannet::sampling::internal {

RowScans Avx512RowScans() {
  return {.target = "avx512",
          .argmax = &Lanes<16>::Argmax,
          .max = &Lanes<16>::Max,
          .sum_tempered_exp = &Lanes<16>::SumTemperedExp,
          .tempered_exps = &Lanes<16>::TemperedExps};
}

}  // namespace gannet::sampling::internal
