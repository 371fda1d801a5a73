// Scalar reference twins of the CPU ops (kernels/cpu/ops.h): the ground truth every fast path is
// compared with by tests/unit/kernels/ops_conformance_test.cc.
//
// Written for clarity, not speed: they may allocate, accumulate in double where that makes the
// answer more exact, and run on one thread. Each takes the same arguments as its ops.h
// namesake (minus the ISA and thread pool) and has the same contract and preconditions.
// Thread-safety: all functions are reentrant.
#pragma once

#include <cstdint>

#include "kernels/cpu/ops.h"
#include "tensor/dtype.h"

namespace gannet::cpu::ref {

// Plain softmax per (token, head) over every visible key, scores and weights in double.
// A query that sees no key (q_pos < 0, or all keys beyond n_kv) gets a zero output row. A token
// tree's rows see the keys ops.h describes (the committed slots, then their mask's tree slots).
void Attention(const AttentionArgs& a);

void StoreKv(const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t n_tokens,
             int64_t row_elems, const int32_t* pos, uint16_t* const* k_blocks,
             uint16_t* const* v_blocks, int64_t block_size);

// Sum of squares in double, then scaled in f32.
void RmsNorm(const float* x, int64_t x_stride, const float* w, float eps, int64_t n_rows,
             int64_t n_cols, float* out, int64_t out_stride);

// ggml's rope (ggml_rope_cache_init / rope_yarn / ggml_rope_yarn_corr_dims) step by step.
void Rope(const RopeArgs& a);

void Glu(GluAct act, const float* gate, const float* up, int64_t n, float* out);
void Add(const float* a, const float* b, int64_t n, float* out);
void Scale(float* x, int64_t n, float s);
void GetRows(DType wtype, const void* w, int64_t n_cols, const int32_t* ids, int64_t n_ids,
             float* out, int64_t out_stride);

// Scalar activations used by Glu (f32, libm tanhf / expf).
float GeluTanh(float u);
float Silu(float u);

// YaRN correction range [dims[0], dims[1]] as ggml_rope_yarn_corr_dims.
void RopeYarnCorrDims(int64_t n_rot, int64_t n_ctx_orig, float base, float beta_fast,
                      float beta_slow, float dims[2]);

}  // namespace gannet::cpu::ref
