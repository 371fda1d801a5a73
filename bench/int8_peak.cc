// int8_peak: the CPU's peak rate of the AVX2 int8 dot-product step every quantized matmul kernel
// here (and llama.cpp's) is built on: vpmaddubsw (32 u8 x s8 products into 16 int16 pair sums),
// vpmaddwd (into 8 int32) and vpaddd, as independent chains so that only throughput limits them.
// Prints multiply-adds per second for one thread and for every core together: the ceiling for
// compute-bound work such as prefill and batched decoding (docs/performance.md, "Serving").
// Two variants for one thread follow: with the vpsignb that signed codes (Q8_0 x Q8_0) need
// before vpmaddubsw, and the same 32 products as two vpmaddwd of int16 operands.
//
//   build/bin/int8_peak
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

constexpr int kChains = 8;
constexpr long kIters = 50'000'000;

enum class Step { kMaddubs, kSignMaddubs, kInt16Madd };

// Multiply-adds per second of kChains independent chains of one step (32 products) + vpaddd.
template <Step kStep>
double Int8Rate() {
  __m256i w = _mm256_set1_epi8(3), w2 = _mm256_set1_epi8(-5);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i x[kChains], acc[kChains];
  for (int i = 0; i < kChains; ++i) {
    x[i] = _mm256_set1_epi8(static_cast<char>(i + 1));
    acc[i] = _mm256_setzero_si256();
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < kIters; ++it) {
    for (int i = 0; i < kChains; ++i) {
      __m256i s;
      if constexpr (kStep == Step::kMaddubs) {
        s = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x[i]), ones);
      } else if constexpr (kStep == Step::kSignMaddubs) {
        s = _mm256_madd_epi16(_mm256_maddubs_epi16(w, _mm256_sign_epi8(x[i], w2)), ones);
      } else {  // 16 + 16 products; w and w2 stand for the two int16 halves of a weight block
        s = _mm256_add_epi32(_mm256_madd_epi16(w, x[i]), _mm256_madd_epi16(w2, x[i]));
      }
      acc[i] = _mm256_add_epi32(acc[i], s);
    }
    __asm__ volatile("" : "+x"(w), "+x"(w2));  // keeps the loop from being folded away
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int sink = 0;
  for (int i = 0; i < kChains; ++i) sink += _mm256_extract_epi32(acc[i], 0);
  __asm__ volatile("" : : "r"(sink));
  return static_cast<double>(kIters) * kChains * 32 / s;
}

}  // namespace

int main() {
  for (int r = 0; r < 3; ++r) {
    std::printf("1 thread: %.1f G int8 multiply-adds/s\n", Int8Rate<Step::kMaddubs>() / 1e9);
  }
  const unsigned n = std::max(1u, std::thread::hardware_concurrency());
  std::vector<double> rates(n);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < n; ++i)
    threads.emplace_back([&rates, i] { rates[i] = Int8Rate<Step::kMaddubs>(); });
  double total = 0;
  for (unsigned i = 0; i < n; ++i) {
    threads[i].join();
    total += rates[i];
  }
  std::printf("%u threads: %.1f G int8 multiply-adds/s in all\n", n, total / 1e9);
  std::printf("1 thread, vpsignb + vpmaddubsw + vpmaddwd (signed codes): %.1f G multiply-adds/s\n",
              Int8Rate<Step::kSignMaddubs>() / 1e9);
  std::printf("1 thread, 2 x vpmaddwd of int16 operands: %.1f G multiply-adds/s\n",
              Int8Rate<Step::kInt16Madd>() / 1e9);
  return 0;
}
