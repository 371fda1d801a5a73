// The exponential scans of row_scan for the AVX2 target: row_scan_lanes.h at 8 floats per
// vector. Compiled with the target's flags (src/CMakeLists.txt); called only where the CPU has it.
#include "sampling/row_scan_internal.h"
#include "sampling/row_scan_lanes.h"

namespace gannet::sampling::internal {

ExpScans Avx2ExpScans() {
  return {.target = "avx2",
          .sum_tempered_exp = &Lanes<8>::SumTemperedExp,
          .tempered_exps = &Lanes<8>::TemperedExps};
}

}  // namespace gannet::sampling::internal
