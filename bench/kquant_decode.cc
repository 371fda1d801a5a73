// kquant_decode: one-token (decode) K-quant matmul, the kernel MatMul dispatches for Q4_K, Q5_K
// and Q6_K against the previous one-row kernel (kept below as the baseline), interleaved in one
// process on the shapes of Gemma 3 270M and Llama 3.2 1B. Weights are read from a pool of
// copies larger than the L3 cache, as in decoding, where every matrix comes from memory; the
// "hot" figures repeat the first rows of one matrix, up to 192 KiB of them (L2: compute only).
// Prints multiply-adds per ns, the ratio new / old, and checks that both give the same bits. On a
// CPU with AVX-512 VNNI the AVX-512 target's kernel is timed too (its ratio is against "new", the
// AVX2 kernel) and must give the same bits as well.
//
//   taskset -c 1 build/bin/kquant_decode [rounds]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/ops.h"
#include "tensor/quant/quant.h"

namespace gannet::cpu {
namespace {

// ---- Baseline: the previous one-row decode kernels --------------------------------------------
namespace baseline {

inline __m256i LoadU256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

inline int HorizontalSumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

inline float AccumulateBlock(float acc, float dxd, int isum) {
  return _mm_cvtss_f32(
      _mm_fmadd_ss(_mm_set_ss(dxd), _mm_cvtsi32_ss(_mm_setzero_ps(), isum), _mm_set_ss(acc)));
}
inline float SubtractBlock(float acc, float dxd, int msum) {
  return _mm_cvtss_f32(
      _mm_fnmadd_ss(_mm_set_ss(dxd), _mm_cvtsi32_ss(_mm_setzero_ps(), msum), _mm_set_ss(acc)));
}

inline void DecodeScalesK4(const uint8_t* q, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = q[j] & 63;
    m[j] = q[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((q[j + 8] & 0x0F) | ((q[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
  }
}

template <bool kHighBit>
inline void UnpackQ45K(const uint8_t* qs, __m256i* hbits, __m256i* lo, __m256i* hi) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i q4 = LoadU256(qs);
  *lo = _mm256_and_si256(q4, low4);
  *hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low4);
  if constexpr (kHighBit) {
    const __m256i one = _mm256_set1_epi8(1);
    *lo = _mm256_or_si256(*lo, _mm256_slli_epi16(_mm256_and_si256(*hbits, one), 4));
    *hi = _mm256_or_si256(
        *hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(*hbits, 1), one), 4));
    *hbits = _mm256_srli_epi16(*hbits, 2);
  }
}

template <class Block, bool kHighBit>
void TileQ45K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  const auto* x = reinterpret_cast<const BlockQ8_K*>(t.xq);
  for (int64_t r = r0; r < r1; ++r) {
    const auto* w = reinterpret_cast<const Block*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const Block& wb = w[b];
      uint8_t sc[8], mn[8];
      DecodeScalesK4(wb.scales, sc, mn);
      uint64_t mn_bits;
      std::memcpy(&mn_bits, mn, 8);
      const __m128i mins16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mn_bits)));
      __m256i sumi = _mm256_setzero_si256();
      __m256i hbits = _mm256_setzero_si256();
      if constexpr (kHighBit) hbits = LoadU256(wb.qh);
      for (int c = 0; c < 4; ++c) {
        __m256i lo, hi;
        UnpackQ45K<kHighBit>(wb.qs + 32 * c, &hbits, &lo, &hi);
        const int8_t* q8 = x[b].qs + 64 * c;
        const __m256i p_lo =
            _mm256_madd_epi16(_mm256_maddubs_epi16(lo, LoadU256(q8)), _mm256_set1_epi16(sc[2 * c]));
        const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, LoadU256(q8 + 32)),
                                               _mm256_set1_epi16(sc[2 * c + 1]));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
      }
      const float d = _cvtsh_ss(wb.d), dmin = _cvtsh_ss(wb.dmin);
      const BlockQ8_K& xb = x[b];
      acc = AccumulateBlock(acc, d * xb.d, HorizontalSumI32(sumi));
      const __m256i bs = LoadU256(xb.bsums);
      const __m128i pair =
          _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
      __m128i m = _mm_madd_epi16(mins16, pair);
      m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
      m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 1));
      acc = SubtractBlock(acc, dmin * xb.d, _mm_cvtsi128_si32(m));
    }
    t.y[r] = acc;
  }
}

inline void UnpackQ6K(const BlockQ6_K& wb, int n, __m256i q[4]) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i low2 = _mm256_set1_epi8(0x03);
  const __m256i ql0 = LoadU256(wb.ql + 64 * n);
  const __m256i ql1 = LoadU256(wb.ql + 64 * n + 32);
  const __m256i qh = LoadU256(wb.qh + 32 * n);
  q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4),
                         _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
}

void TileQ6K(const MatMulTile& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.n_in / 256;
  const auto* x = reinterpret_cast<const BlockQ8_K*>(t.xq);
  for (int64_t r = r0; r < r1; ++r) {
    const auto* w =
        reinterpret_cast<const BlockQ6_K*>(t.w + static_cast<size_t>(r) * t.w_row_bytes);
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& wb = w[b];
      const __m256i sc16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
      __m256i sumi =
          _mm256_sub_epi32(_mm256_setzero_si256(),
                           _mm256_slli_epi32(_mm256_madd_epi16(sc16, LoadU256(x[b].bsums)), 5));
      for (int n = 0; n < 2; ++n) {
        __m256i q[4];
        UnpackQ6K(wb, n, q);
        for (int k = 0; k < 4; ++k) {
          const int s = 8 * n + 2 * k;
          const __m256i scale =
              _mm256_setr_m128i(_mm_set1_epi16(wb.scales[s]), _mm_set1_epi16(wb.scales[s + 1]));
          const __m256i p = _mm256_maddubs_epi16(q[k], LoadU256(x[b].qs + 128 * n + 32 * k));
          sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale));
        }
      }
      acc = AccumulateBlock(acc, _cvtsh_ss(wb.d) * x[b].d, HorizontalSumI32(sumi));
    }
    t.y[r] = acc;
  }
}

MatMulTileFn Kernel(DType t) {
  switch (t) {
    case DType::kQ4_K:
      return &TileQ45K<BlockQ4_K, false>;
    case DType::kQ5_K:
      return &TileQ45K<BlockQ5_K, true>;
    case DType::kQ6_K:
      return &TileQ6K;
    default:
      return nullptr;
  }
}

}  // namespace baseline

struct Case {
  const char* what;
  DType type;
  int64_t n_out, n_in;
};

constexpr size_t kPoolBytes = size_t{96} << 20;  // well past the 8 MiB L3

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Run(const Case& c, int rounds) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t rb = static_cast<size_t>(*RowBytes(c.type, c.n_in));
  const size_t matrix = rb * static_cast<size_t>(c.n_out);
  const size_t copies = std::max<size_t>(1, (kPoolBytes + matrix - 1) / matrix);
  // 61 distinct quantized rows repeated (quantizing every row would take long); a prime count
  // keeps rows of one 4-row group different.
  std::vector<uint8_t> rows(61 * rb);
  std::vector<float> f(c.n_in);
  for (int i = 0; i < 61; ++i) {
    for (auto& v : f) v = 0.05f * nd(rng);
    QuantizeRow(c.type, f.data(), rows.data() + i * rb, c.n_in);
  }
  std::vector<uint8_t> pool(matrix * copies);
  for (size_t r = 0; r < static_cast<size_t>(c.n_out) * copies; ++r) {
    std::memcpy(pool.data() + r * rb, rows.data() + (r % 61) * rb, rb);
  }
  for (auto& v : f) v = nd(rng);
  std::vector<BlockQ8_K> xq(c.n_in / 256);
  QuantizeRowQ8_K(f.data(), xq.data(), c.n_in);

  // The previous one-row kernel, the AVX2 kernel and, on a CPU with AVX-512 VNNI, that target's.
  Isa isas[3];
  const bool avx512 = AvailableIsas(isas) == 3 && isas[2] == Isa::kAvx512;
  const int n_fns = avx512 ? 3 : 2;
  const MatMulTileFn fns[3] = {baseline::Kernel(c.type), avx2::MatMulTileKernelK(c.type),
                               avx512 ? avx512::MatMulTileKernelK(c.type) : nullptr};
  std::vector<float> y[3] = {std::vector<float>(c.n_out), std::vector<float>(c.n_out),
                             std::vector<float>(c.n_out)};
  // Hot: the first rows of copy 0, at most 192 KiB of them (they stay in L2), a multiple of 4.
  const int64_t fit_rows = (int64_t{192} << 10) / static_cast<int64_t>(rb) / 4 * 4;
  const int64_t hot_rows = std::min<int64_t>(c.n_out, std::max<int64_t>(4, fit_rows));
  auto tile = [&](int k, size_t copy, int64_t n_rows) {
    MatMulTile t;
    t.w = pool.data() + copy * matrix;
    t.w_row_bytes = rb;
    t.xq = reinterpret_cast<const uint8_t*>(xq.data());
    t.xq_stride = xq.size() * sizeof(BlockQ8_K);
    t.nt = 1;
    t.n_in = c.n_in;
    t.y = y[k].data();
    t.y_stride = c.n_out;
    fns[k](t, 0, n_rows);
  };
  std::vector<double> cold[3], hot[3];
  size_t next = 0;
  for (int round = 0; round < rounds; ++round) {
    for (int k = 0; k < n_fns; ++k) {
      // Cold: each call takes the next copy of the pool (read from memory).
      const int calls = 8;
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < calls; ++i) tile(k, next++ % copies, c.n_out);
      auto t1 = std::chrono::steady_clock::now();
      cold[k].push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / calls);
      tile(k, 0, hot_rows);
      t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 4 * calls; ++i) tile(k, 0, hot_rows);
      t1 = std::chrono::steady_clock::now();
      hot[k].push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / (4 * calls));
    }
  }
  bool same = true;
  for (int k = 0; k < n_fns; ++k) tile(k, 0, c.n_out);
  for (int k = 1; k < n_fns; ++k)
    same &= std::memcmp(y[0].data(), y[k].data(), y[0].size() * sizeof(float)) == 0;
  const double macs = static_cast<double>(c.n_out) * static_cast<double>(c.n_in);
  const double hot_macs = static_cast<double>(hot_rows) * static_cast<double>(c.n_in);
  const double co = Median(cold[0]), cn = Median(cold[1]), ho = Median(hot[0]), hn = Median(hot[1]);
  std::printf(
      "%-28s %-5s %6lldx%-6lld cold: old %6.2f new %6.2f MAC/ns x%.2f (new %5.1f GB/s)"
      " | hot: old %6.2f new %6.2f x%.2f",
      c.what, std::string(DTypeName(c.type)).c_str(), static_cast<long long>(c.n_out),
      static_cast<long long>(c.n_in), macs / co, macs / cn, co / cn,
      static_cast<double>(matrix) / cn, hot_macs / ho, hot_macs / hn, ho / hn);
  if (avx512) {
    const double cv = Median(cold[2]), hv = Median(hot[2]);
    std::printf(" | avx512 cold %6.2f x%.2f hot %6.2f x%.2f (vs new)", macs / cv, cn / cv,
                hot_macs / hv, hn / hv);
  }
  std::printf(" | bits %s\n", same ? "same" : "DIFFER");
}

}  // namespace
}  // namespace gannet::cpu

int main(int argc, char** argv) {
  using gannet::DType;
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 15;
  const gannet::cpu::Case cases[] = {
      {"gemma-270m attn_output", DType::kQ4_K, 640, 1024},
      {"gemma-270m ffn_down", DType::kQ4_K, 640, 2048},
      {"gemma-270m ffn_down", DType::kQ6_K, 640, 2048},
      {"gemma-270m ffn_down (Q5_K)", DType::kQ5_K, 640, 2048},
      {"llama-1b ffn_up/gate", DType::kQ4_K, 8192, 2048},
      {"llama-1b ffn_down", DType::kQ4_K, 2048, 8192},
      {"llama-1b ffn_up/gate", DType::kQ6_K, 8192, 2048},
      {"llama-1b ffn_down", DType::kQ6_K, 2048, 8192},
      {"llama-1b ffn_down (Q5_K)", DType::kQ5_K, 2048, 8192},
  };
  std::printf(
      "one-token K-quant matmul, one thread, %d interleaved rounds (medians); command: %s %d\n",
      rounds, argv[0], rounds);
  for (const auto& c : cases) gannet::cpu::Run(c, rounds);
  return 0;
}
