// The statistics `gannet perplexity` reports, as llama-perplexity computes them: perplexity with
// its uncertainty over scored positions, and against a base file (kld_file.h) the KL divergence,
// top-1 agreement, both perplexities and their ratio, and the change of the probability of the
// token that followed (delta-p).
// Pure functions and value types; thread-compatible.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <vector>

#include "cli/kld_file.h"

namespace gannet::cli {

// One logits row seen through log-softmax.
struct RowScore {
  double nll = 0;      // -log p(target)
  int32_t argmax = 0;  // the most probable token (the lowest id among equals)
};
// REQUIRES: 0 <= target < row.size().
RowScore ScoreRow(std::span<const float> row, int32_t target);

// Mean and standard error of a stream of values.
class MeanAccumulator {
 public:
  void Add(double x) {
    sum_ += x;
    sum2_ += x * x;
    ++n_;
  }
  int64_t count() const { return n_; }
  double mean() const { return n_ > 0 ? sum_ / static_cast<double>(n_) : 0; }
  double mean_of_squares() const { return n_ > 0 ? sum2_ / static_cast<double>(n_) : 0; }
  // sqrt(variance / (n - 1)) with the variance of the values; 0 for fewer than two values.
  double stderr_of_mean() const;

 private:
  double sum_ = 0, sum2_ = 0;
  int64_t n_ = 0;
};

// PPL = exp(mean nll); its error exp(mean) * stderr(nll) (first-order, as llama-perplexity).
struct Perplexity {
  double ppl = 0, error = 0;
};
Perplexity PerplexityOf(const MeanAccumulator& nll);

// One position compared with the base file's record of it.
struct KldPosition {
  double kld = 0;            // KL(base || this) over the base's top-k tokens plus the rest
  bool top1_agrees = false;  // this model's argmax is the base's most probable token
  double nll_this = 0, nll_base = 0;
  double p_this = 0, p_base = 0;  // probability of the token that followed
};
// REQUIRES: 0 <= target < row.size(); base.ids within the row.
KldPosition CompareWithBase(std::span<const float> row, int32_t target, const KldRecord& base);

class KldSummary {
 public:
  void Add(const KldPosition& p);
  int64_t count() const { return kld_.count(); }
  // The report: PPL of both, their ratio, KLD mean and quantiles, top-1 agreement, delta-p.
  void Print(std::FILE* out) const;

 private:
  MeanAccumulator kld_, nll_this_, nll_base_, ln_ratio_, top1_, delta_p_;
  std::vector<float> klds_, delta_ps_;  // for quantiles
};

}  // namespace gannet::cli
