// CpuBackend: kernels::Backend on the CPU kernels of ops.h, on a borrowed thread pool.
//
// Each op is the ops.h kernel (or composition of kernels) the plan ran before the Backend seam
// existed, with the same arguments, so results are bit for bit those of the kernels' own tests.
// The ISA is chosen once, at construction (BestIsa() unless given).
// Weights (PrepareMatMulWeights): with repacking on, the matrices the ISA has interleaved kernels
// for (repack.h: K-quants, and Q8_0 on AVX-512) are copied interleaved; MatMul finds a weight's
// copy by its data pointer, and so does Embed (a tied embedding table: the same row bytes,
// unpacked).
// Thread-safety: as Backend; the pool must not run other work while an op runs.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <unordered_map>

#include "base/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/ops.h"

namespace gannet::cpu {

class CpuBackend final : public kernels::Backend {
 public:
  // REQUIRES: `pool` outlives the backend.
  // repack_weights: whether PrepareMatMulWeights copies weights (off: the file layout only).
  // shared (optional): a backend whose copies this one reads too (NewSharingWeights); it must
  // outlive this one.
  explicit CpuBackend(ThreadPool& pool, Isa isa = BestIsa(), bool repack_weights = true,
                      const CpuBackend* shared = nullptr)
      : pool_(pool), isa_(isa), repack_weights_(repack_weights), shared_(shared) {}

  const char* name() const override { return "cpu"; }
  ThreadPool& pool() { return pool_; }
  Isa isa() const { return isa_; }

  std::vector<bool> PrepareMatMulWeights(std::span<const kernels::Weight> weights,
                                         const ReleaseFn& release) override;
  size_t prepared_weight_bytes() const override { return prepared_bytes_; }
  std::unique_ptr<kernels::Backend> NewSharingWeights() const override;
  void ReadWeightRows(const kernels::Weight& w, std::span<const int32_t> rows,
                      void* dst) const override;
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
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  // The interleaved copy of w (repack.h), or null when there is no memory for it.
  std::unique_ptr<uint8_t, FreeDeleter> Repack(const kernels::Weight& w, const ReleaseFn& release);
  // The copy of the weight whose data is `data` (this backend's or the shared one's), or null.
  const uint8_t* CopyOf(const void* data) const;
  // The ops.h form of a MatMul, each output on its weight's copy where there is one.
  MatMulGroupArgs GroupArgs(const kernels::MatMulArgs& a, MatMulOutput* outs) const;

  ThreadPool& pool_;
  Isa isa_;
  bool repack_weights_ = true;
  const CpuBackend* shared_ = nullptr;
  // Interleaved copies (repack.h), by the data pointer of the weight they replace.
  std::unordered_map<const void*, std::unique_ptr<uint8_t, FreeDeleter>> copies_;
  size_t prepared_bytes_ = 0;
};

}  // namespace gannet::cpu
