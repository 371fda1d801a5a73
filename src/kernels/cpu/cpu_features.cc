// CPU feature probing (once) and the choice of kernel target.
#include <cpuid.h>

#include "kernels/cpu/ops.h"

namespace gannet::cpu {
namespace {

uint64_t ReadXcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures Probe() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  const bool fma = (c >> 12) & 1;
  const bool f16c = (c >> 29) & 1;
  if (!osxsave) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
  const bool zmm_os = (xcr0 & 0xE6) == 0xE6;  // plus opmask and upper ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ymm_os && ((b >> 5) & 1);
  f.fma = ymm_os && fma;
  f.f16c = ymm_os && f16c;
  f.avx512f = zmm_os && ((b >> 16) & 1);
  f.avx512bw = zmm_os && ((b >> 30) & 1);
  f.avx512vl = zmm_os && ((b >> 31) & 1);
  f.avx512dq = zmm_os && ((b >> 17) & 1);
  f.avx512vnni = zmm_os && ((c >> 11) & 1);
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  f.avx512bf16 = zmm_os && ((a1 >> 5) & 1);
  return f;
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Probe();
  return features;
}

int AvailableIsas(Isa out[3]) {
  const CpuFeatures& f = DetectCpuFeatures();
  int n = 0;
  out[n++] = Isa::kScalar;
  if (!(f.avx2 && f.fma && f.f16c)) return n;
  out[n++] = Isa::kAvx2;
  // The AVX-512 files are compiled with F, BW, VL, DQ and VNNI (and call AVX2 code).
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni) out[n++] = Isa::kAvx512;
  return n;
}

Isa BestIsa() {
  static const Isa best = [] {
    Isa isas[3];
    return isas[AvailableIsas(isas) - 1];
  }();
  return best;
}

std::optional<Isa> IsaByName(std::string_view name) {
  Isa isas[3];
  const int n = AvailableIsas(isas);
  for (int k = 0; k < n; ++k) {
    if (name == IsaName(isas[k])) return isas[k];
  }
  return std::nullopt;
}

}  // namespace gannet::cpu
