// sampler_rate: microseconds per Sampler::SampleUnchanged call over logit rows of a given
// vocabulary size, for greedy sampling and for the default chain (temperature 0.8, top_k 40,
// top_p 0.95, min_p 0.05), and per TopLogprobs call (the API's logprobs, top 5). Rows of normal
// logits (std 3), as many as a 16-sequence decode step samples, so a 262144-token vocabulary's
// 16 MiB of rows come from the last-level cache or memory as in a server's step. Those rows are
// flat: top_p 0.95 keeps most of them. A language model's rows are peaked (Gemma 3 270M on a few
// prompts: 2 to 1600 tokens hold 95% of the mass, 2.5 to 8.4 logits below the max), so top_p
// also runs on peaked rows: std 2.5 and 1000 tokens at 10 +- 3 (95% of the mass ~6 logits deep).
// Best of REPS passes over the rows; prints one line per setting. Compare two commits by running
// each build's binary.
//
//   build/bin/sampler_rate 262144 16 5       # n_vocab rows reps
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "sampling/logprobs.h"
#include "sampling/sampler.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s N_VOCAB ROWS [REPS]\n", argv[0]);
    return 2;
  }
  const int n_vocab = std::atoi(argv[1]);
  const int n_rows = std::atoi(argv[2]);
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  if (n_vocab < 1 || n_rows < 1 || reps < 1) {
    std::fprintf(stderr, "sampler_rate: N_VOCAB, ROWS and REPS must be positive\n");
    return 2;
  }
  std::mt19937_64 rng(1);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<std::vector<float>> rows(static_cast<size_t>(n_rows),
                                       std::vector<float>(static_cast<size_t>(n_vocab)));
  for (auto& row : rows) {
    for (float& l : row) l = dist(rng);
  }
  std::normal_distribution<float> base(0.0f, 2.5f), likely(10.0f, 3.0f);
  std::uniform_int_distribution<int> token(0, n_vocab - 1);
  std::vector<std::vector<float>> peaked = rows;
  for (auto& row : peaked) {
    for (float& l : row) l = base(rng);
    for (int k = 0; k < 1000; ++k) row[static_cast<size_t>(token(rng))] = likely(rng);
  }
  struct Setting {
    const char* name;
    gannet::SamplingParams params;
    bool peaked = false;
  };
  const Setting settings[] = {
      {"greedy", gannet::SamplingParams{.temperature = 0.0f, .seed = 1}},
      {"default chain (t 0.8, top_k 40, top_p 0.95, min_p 0.05)",
       gannet::SamplingParams{.seed = 1}},
      {"the API's defaults (t 1, no truncation)",
       gannet::SamplingParams{
           .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 1}},
      {"the API with top_p 0.95 (t 1)",
       gannet::SamplingParams{
           .temperature = 1.0f, .top_k = 0, .top_p = 0.95f, .min_p = 0.0f, .seed = 1}},
      {"the API with top_p 0.95 (t 1), peaked rows",
       gannet::SamplingParams{
           .temperature = 1.0f, .top_k = 0, .top_p = 0.95f, .min_p = 0.0f, .seed = 1},
       true},
  };
  for (const Setting& s : settings) {
    gannet::Sampler sampler(s.params, n_vocab);
    double best = 1e30;
    int64_t checksum = 0;              // keeps the calls from being optimized out
    for (int r = 0; r <= reps; ++r) {  // pass 0 warms up
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& row : s.peaked ? peaked : rows) checksum += sampler.SampleUnchanged(row);
      const double us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
          n_rows;
      if (r > 0) best = std::min(best, us);
    }
    std::printf("%s: %d logits x %d rows: %.1f us per row (best of %d; checksum %lld)\n", s.name,
                n_vocab, n_rows, best, reps, static_cast<long long>(checksum));
  }
  // The API's logprobs: the chosen token's log-probability and the top 5 (TopLogprobs).
  {
    std::vector<gannet::TokenLogprob> top;
    float chosen = 0;
    double best = 1e30, checksum = 0;
    for (int r = 0; r <= reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& row : rows) {
        gannet::TopLogprobs(row, 0, 5, top, &chosen);
        checksum += chosen;
      }
      const double us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
          n_rows;
      if (r > 0) best = std::min(best, us);
    }
    std::printf(
        "top_logprobs 5: %d logits x %d rows: %.1f us per row (best of %d; checksum %.4f)\n",
        n_vocab, n_rows, best, reps, checksum);
  }
  return 0;
}
