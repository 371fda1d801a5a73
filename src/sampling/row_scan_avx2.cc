// The row scans of row_scan for the AVX2 target: row_scan_lanes.h at 8 floats per
// vector. Compiled with the target's flags (src/CMakeLists.txt); called only where the CPU has it.
#include "sampling/row_scan_internal.h"
#include "sampling/row_scan_lanes.h"

namespace gannet::sampling::internal {

RowScans Avx2RowScans() {
  return {.target = "avx2",
          .argmax = &Lanes<8>::Argmax,
          .max = &Lanes<8>::Max,
          .sum_tempered_exp = &Lanes<8>::SumTemperedExp,
          .tempered_exps = &Lanes<8>::TemperedExps};
}

}  // namespace gannet::sampling::internal
