// A quick conformance run of the CPU kernels on the host they are about to serve on (`gannet
// doctor`; SuperBench, ATC'24: validate the machine before trusting it): every ISA target this
// binary has and this CPU runs, MatMul for every loadable weight type (one token, the decode
// path, and a few tokens, a prefill tile) and Attention (a decode step and a short chunk, with
// GQA and a window), each against the scalar twins (tensor/quant's VecDotRef on the reference
// quantizers, ref::Attention) on fixed pseudo-random data, with the tolerances of the unit
// conformance tests. A fraction of a second on one thread; a failure here means the kernels
// compute wrong numbers on this machine (a miscompiled target, a CPU or hypervisor defect).
// Thread-safety: uses the pool's threads; call from the thread that owns the pool's Run.
#pragma once

#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/ops.h"

namespace gannet::cpu {

struct SelfCheckResult {
  std::string name;  // "matmul/avx2", "attention/scalar", ...
  bool ok = false;
  std::string detail;  // what was checked, or the first mismatch
};

// One result per (op, ISA): matmul then attention for each AvailableIsas() target.
std::vector<SelfCheckResult> RunKernelSelfCheck(ThreadPool& pool);

}  // namespace gannet::cpu
