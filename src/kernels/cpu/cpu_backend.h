// CpuBackend: kernels::Backend on the CPU kernels of ops.h, on a borrowed thread pool.
//
// Each op is the ops.h kernel (or composition of kernels) the plan ran before the Backend seam
// existed, with the same arguments, so results are bit for bit those of the kernels' own tests.
// The ISA is chosen once, at construction (BestIsa() unless given).
// Thread-safety: as Backend; the pool must not run other work while an op runs.
#pragma once

#include "base/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/ops.h"

namespace gannet::cpu {

class CpuBackend final : public kernels::Backend {
 public:
  // REQUIRES: `pool` outlives the backend.
  explicit CpuBackend(ThreadPool& pool, Isa isa = BestIsa()) : pool_(pool), isa_(isa) {}

  const char* name() const override { return "cpu"; }
  ThreadPool& pool() { return pool_; }
  Isa isa() const { return isa_; }

  void Embed(const kernels::Weight& table, std::span<const int32_t> tokens, float scale,
             float* out) override;
  size_t MatMulScratchBytes(const kernels::MatMulArgs& a) const override;
  void MatMul(const kernels::MatMulArgs& a) override;
  void AddBias(const float* x, const float* bias, int64_t rows, int64_t cols, float* out) override;
  void RmsNorm(const float* x, const float* w, float eps, int64_t rows, int64_t cols,
               float* out) override;
  void Rope(const kernels::RopeParams& p, const float* x, int64_t n_tokens,
            const int32_t* positions, float* out) override;
  void Attention(const kernels::AttentionArgs& a) override;
  void Glu(kernels::GluAct act, const float* gate, const float* up, int64_t n, float* out) override;
  void Add(const float* a, const float* b, int64_t n, float* out) override;
  void AddRmsNorm(const float* a, const float* b, const float* w, float eps, int64_t rows,
                  int64_t cols, float* out) override;
  void Scale(const float* x, int64_t n, float s, float* out) override;
  void Softcap(const float* x, int64_t n, float cap, float* out) override;
  void GatherRows(const float* x, int64_t cols, std::span<const int32_t> rows, float* out) override;

 private:
  ThreadPool& pool_;
  Isa isa_;
};

}  // namespace gannet::cpu
