// CpuBackend: kernels::Backend on the CPU kernels of ops.h, on a borrowed thread pool.
//
// Each op is the ops.h kernel (or composition of kernels) the plan ran before the Backend seam
// existed, with the same arguments, so results are bit for bit those of the kernels' own tests.
// The ISA is chosen once, at construction (BestIsa() unless given).
// Weights (PrepareMatMulWeights): with repacking on, the matrices the ISA has interleaved kernels
// for (repack.h: K-quants, and Q8_0, Q4_0, Q5_0 on AVX-512) are copied interleaved, and
// (copy_other_weights) the others byte for byte, all into one block of anonymous memory on huge
// pages, one after another in the order offered (the order a forward pass reads them). MatMul finds
// a weight's copy by its data pointer, and so does Embed (a tied embedding table: the same row
// bytes, unpacked). Thread-safety: as Backend; the pool must not run other work while an op runs.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "base/page_memory.h"
#include "base/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/ops.h"

namespace gannet::cpu {

struct CpuBackendOptions {
  // Whether PrepareMatMulWeights copies weights at all (off: every matmul reads the file layout).
  // Matrices with interleaved kernels on the ISA are copied interleaved (repack.h).
  bool repack_weights = true;
  // Also copy the matrices without an interleaved layout (e.g. Q4_1), unchanged. A decode step
  // then streams anonymous memory on huge pages, all weights in one block in reading order, instead
  // of the file's 4 KiB page-cache pages: no TLB miss and no prefetcher restart per 4 KiB.
  bool copy_other_weights = true;
  // Back the copies with transparent huge pages (PageMemory); off: small pages.
  bool huge_pages = true;
};

class CpuBackend final : public kernels::Backend {
 public:
  // REQUIRES: `pool` outlives the backend.
  // repack_weights: whether PrepareMatMulWeights copies weights (off: the file layout only).
  // shared (optional): a backend whose copies this one reads too (NewSharingWeights); it must
  // outlive this one.
  explicit CpuBackend(ThreadPool& pool, Isa isa = BestIsa(), bool repack_weights = true,
                      const CpuBackend* shared = nullptr)
      : CpuBackend(pool, isa, CpuBackendOptions{.repack_weights = repack_weights}, shared) {}
  CpuBackend(ThreadPool& pool, Isa isa, const CpuBackendOptions& options,
             const CpuBackend* shared = nullptr)
      : pool_(pool), isa_(isa), options_(options), shared_(shared) {}

  const char* name() const override { return "cpu"; }
  ThreadPool& pool() { return pool_; }
  Isa isa() const { return isa_; }
  const CpuBackendOptions& options() const { return options_; }

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
  struct Copy {
    const uint8_t* data = nullptr;  // null: no copy
    bool interleaved = false;       // repack.h's layout; else the file's
  };
  // Writes the copy of w into dst (interleaved or not), releasing the original in slices.
  void CopyWeight(const kernels::Weight& w, bool interleave, uint8_t* dst,
                  const ReleaseFn& release);
  // The copy of the weight whose data is `data` (this backend's or the shared one's).
  Copy CopyOf(const void* data) const;
  // The ops.h form of a MatMul, each output on its weight's copy where there is one.
  MatMulGroupArgs GroupArgs(const kernels::MatMulArgs& a, MatMulOutput* outs) const;

  ThreadPool& pool_;
  Isa isa_;
  CpuBackendOptions options_;
  const CpuBackend* shared_ = nullptr;
  // The copies, by the data pointer of the weight they replace; they live in blocks_ (one block
  // per PrepareMatMulWeights call).
  std::unordered_map<const void*, Copy> copies_;
  std::vector<PageMemory> blocks_;
  size_t prepared_bytes_ = 0;
  // Attention's sequences taken whole by one thread each (indexes into its seqs, ascending).
  std::vector<uint32_t> small_seqs_;
  // fn(r0, r1) over row ranges covering [0, rows): split over the pool when the rows hold enough
  // values (cols each) to pay for it, else one call.
  template <typename F>
  void ForRows(int64_t rows, int64_t cols, F&& fn);
  // Rope's cos/sin tables (RopeTable) of the last parameter sets and positions it was given.
  struct RopeCache {
    int64_t n_tokens = -1, n_rot = 0, n_ctx_orig = 0;
    float base = 0, freq_scale = 0, attn_factor = 0, ext_factor = 0, beta_fast = 0, beta_slow = 0;
    std::vector<float> freq_factors;  // empty: none
    std::vector<int32_t> pos;
    std::vector<float> cs;
    bool Matches(const kernels::RopeParams& p, int64_t n, const int32_t* positions) const;
  };
  std::array<RopeCache, 2> rope_cache_;
  size_t rope_next_ = 0;  // the entry the next miss replaces
};

}  // namespace gannet::cpu
