// The host self-check of the CPU kernels (self_check.h).
#include "kernels/cpu/self_check.h"

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ref.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

constexpr DType kWeightTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                                  DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

std::vector<float> Normal(std::mt19937& rng, int64_t n, float scale) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// A weight matrix in `wtype`, activations, and the reference product with its rounding scale.
struct MatMulProblem {
  DType wtype;
  int64_t n_out, n_in, n_tokens;
  std::vector<uint8_t> w;
  std::vector<float> x, y_ref, abs_ref;  // x [n_tokens, n_in]; y_ref, abs_ref [n_tokens, n_out]
};

MatMulProblem MakeMatMul(DType wtype, int64_t n_tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t bs = Traits(wtype).block_size;
  MatMulProblem p{.wtype = wtype,
                  .n_out = 37,
                  .n_in = bs == 1 ? 200 : (bs == 32 ? 320 : 512),
                  .n_tokens = n_tokens};
  const size_t row_bytes = static_cast<size_t>(*RowBytes(wtype, p.n_in));
  p.w.resize(row_bytes * p.n_out);
  std::vector<float> wf(p.n_out * p.n_in);
  for (int64_t o = 0; o < p.n_out; ++o) {
    const std::vector<float> row = Normal(rng, p.n_in, 0.05f);
    QuantizeRow(wtype, row.data(), p.w.data() + o * row_bytes, p.n_in);
    DequantizeRow(wtype, p.w.data() + o * row_bytes, wf.data() + o * p.n_in, p.n_in);
  }
  p.x = Normal(rng, n_tokens * p.n_in, 1.0f);
  const DType partner = DotPartner(wtype);
  const QuantizeActFn quant = matmul_ref::Quantizer(partner);
  std::vector<uint8_t> xq(partner == DType::kF32 ? p.n_in * 4 : *RowBytes(partner, p.n_in));
  std::vector<float> xd(p.n_in);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = p.x.data() + t * p.n_in;
    if (quant != nullptr) {
      quant(xt, xq.data(), p.n_in);
      DequantizeRow(partner, xq.data(), xd.data(), p.n_in);
    } else {
      std::memcpy(xq.data(), xt, p.n_in * sizeof(float));
      std::memcpy(xd.data(), xt, p.n_in * sizeof(float));
    }
    for (int64_t o = 0; o < p.n_out; ++o) {
      double a = 0;
      for (int64_t i = 0; i < p.n_in; ++i) a += std::fabs(double{wf[o * p.n_in + i]} * xd[i]);
      p.y_ref.push_back(VecDotRef(wtype, p.w.data() + o * row_bytes, xq.data(), p.n_in));
      p.abs_ref.push_back(static_cast<float>(a));
    }
  }
  return p;
}

// "" when every output is within the unit tests' bound, else the first mismatch. The bound is
// the Q4_1/Q5_1 one of the unit test, loosened to cover every type without its per-term scale.
std::string CheckMatMul(ThreadPool& pool, const MatMulProblem& p, Isa isa) {
  std::vector<float> y(p.n_tokens * p.n_out, std::nanf(""));
  std::vector<uint8_t> scratch(MatMulScratchBytes(p.wtype, p.n_in, p.n_tokens));
  MatMul(pool,
         MatMulArgs{.wtype = p.wtype,
                    .w = p.w.data(),
                    .n_out = p.n_out,
                    .n_in = p.n_in,
                    .x = p.x.data(),
                    .x_stride = p.n_in,
                    .n_tokens = p.n_tokens,
                    .y = y.data(),
                    .y_stride = p.n_out,
                    .scratch = scratch.data()},
         isa);
  for (size_t i = 0; i < y.size(); ++i) {
    const double tol = 2e-5 * p.abs_ref[i] + 1e-30;
    if (!(std::fabs(double{y[i]} - p.y_ref[i]) <= tol)) {
      return std::string(DTypeName(p.wtype)) + " " + std::to_string(p.n_tokens) +
             " token(s), output [" + std::to_string(i / p.n_out) + ", " +
             std::to_string(i % p.n_out) + "]: " + std::to_string(y[i]) + ", reference " +
             std::to_string(p.y_ref[i]);
    }
  }
  return "";
}

SelfCheckResult MatMulCheck(ThreadPool& pool, Isa isa) {
  SelfCheckResult r{.name = std::string("matmul/") + IsaName(isa), .ok = true};
  int n = 0;
  uint32_t seed = 1;
  for (DType t : kWeightTypes) {
    if (!Traits(t).can_load) continue;
    for (int64_t tokens : {1, 5}) {
      const std::string err = CheckMatMul(pool, MakeMatMul(t, tokens, seed++), isa);
      if (!err.empty()) return {.name = r.name, .ok = false, .detail = err};
    }
    ++n;
  }
  r.detail = std::to_string(n) + " weight types, 1 and 5 tokens, vs the scalar reference";
  return r;
}

// One layer's K/V in blocks of 16 slots, every slot written.
struct Cache {
  std::vector<std::vector<uint16_t>> k, v;
  std::vector<uint16_t*> kp, vp;
  Cache(std::mt19937& rng, int64_t n_kv, int64_t row) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t b = 0; b < (n_kv + 15) / 16; ++b) {
      k.emplace_back(16 * row);
      v.emplace_back(16 * row);
      for (auto* blk : {&k.back(), &v.back()}) {
        for (uint16_t& h : *blk) h = F32ToF16(nd(rng));
      }
      kp.push_back(k.back().data());
      vp.push_back(v.back().data());
    }
  }
};

// A decode step and a 7-token chunk: head_dim 64, 4 query heads on 2 KV heads, window 50 on the
// second.
std::string CheckAttention(ThreadPool& pool, Isa isa, int64_t n_tokens, int64_t window) {
  std::mt19937 rng(static_cast<uint32_t>(n_tokens * 31 + window));
  const int64_t head_dim = 64, n_head = 4, n_kv_head = 2, n_kv = 90;
  Cache cache(rng, n_kv, n_kv_head * head_dim);
  std::vector<float> q = Normal(rng, n_tokens * n_head * head_dim, 1.0f);
  std::vector<int32_t> pos(n_tokens);
  for (int64_t t = 0; t < n_tokens; ++t) pos[t] = static_cast<int32_t>(n_kv - n_tokens + t);
  AttentionArgs a{.q = q.data(),
                  .q_stride = n_head * head_dim,
                  .n_tokens = n_tokens,
                  .n_head = n_head,
                  .n_kv_head = n_kv_head,
                  .head_dim = head_dim,
                  .q_pos = pos.data(),
                  .kv = {cache.kp.data(), cache.vp.data(), 16},
                  .n_kv = n_kv,
                  .window = window,
                  .scale = 0.125f,
                  .out = nullptr,
                  .out_stride = n_head * head_dim};
  std::vector<float> want(n_tokens * n_head * head_dim), got(want.size(), std::nanf(""));
  a.out = want.data();
  ref::Attention(a);
  a.out = got.data();
  Attention(pool, a, isa);
  for (size_t i = 0; i < want.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= 2e-5f)) {
      return std::to_string(n_tokens) + " token(s), window " + std::to_string(window) + ", value " +
             std::to_string(i) + ": " + std::to_string(got[i]) + ", reference " +
             std::to_string(want[i]);
    }
  }
  return "";
}

SelfCheckResult AttentionCheck(ThreadPool& pool, Isa isa) {
  SelfCheckResult r{.name = std::string("attention/") + IsaName(isa), .ok = true};
  for (int64_t tokens : {1, 7}) {
    for (int64_t window : {0, 50}) {
      const std::string err = CheckAttention(pool, isa, tokens, window);
      if (!err.empty()) return {.name = r.name, .ok = false, .detail = err};
    }
  }
  r.detail = "decode and 7-token chunk, GQA, full and sliding window, vs the scalar reference";
  return r;
}

}  // namespace

std::vector<SelfCheckResult> RunKernelSelfCheck(ThreadPool& pool) {
  Isa isas[3];
  const int n = AvailableIsas(isas);
  std::vector<SelfCheckResult> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(MatMulCheck(pool, isas[i]));
    out.push_back(AttentionCheck(pool, isas[i]));
  }
  return out;
}

}  // namespace gannet::cpu
