// Perplexity and KL-divergence statistics (perplexity_stats.h).
#include "cli/perplexity_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gannet::cli {
namespace {

struct Softmax {
  double max = 0, log_sum = 0;  // log p(i) = row[i] - max - log_sum
  int32_t argmax = 0;
};

Softmax SoftmaxOf(std::span<const float> row) {
  Softmax s;
  float max = -std::numeric_limits<float>::infinity();
  for (int32_t i = 0; i < static_cast<int32_t>(row.size()); ++i) {
    if (row[i] > max) {
      max = row[i];
      s.argmax = i;
    }
  }
  double sum = 0;
  for (float x : row) sum += std::exp(static_cast<double>(x) - max);
  s.max = max;
  s.log_sum = std::log(sum);
  return s;
}

// The q-quantile of `v` (nearest rank on a sorted copy).
double Quantile(std::vector<float> v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

RowScore ScoreRow(std::span<const float> row, int32_t target) {
  const Softmax s = SoftmaxOf(row);
  return RowScore{.nll = -(row[target] - s.max - s.log_sum), .argmax = s.argmax};
}

double MeanAccumulator::stderr_of_mean() const {
  if (n_ < 2) return 0;
  const double m = mean();
  const double var = sum2_ / static_cast<double>(n_) - m * m;
  return var > 0 ? std::sqrt(var / static_cast<double>(n_ - 1)) : 0;
}

Perplexity PerplexityOf(const MeanAccumulator& nll) {
  const double ppl = std::exp(nll.mean());
  return Perplexity{.ppl = ppl, .error = ppl * nll.stderr_of_mean()};
}

KldPosition CompareWithBase(std::span<const float> row, int32_t target, const KldRecord& base) {
  const Softmax s = SoftmaxOf(row);
  const double offset = s.max + s.log_sum;
  KldPosition p;
  // Sum over the base's top tokens of p (log p - log q), then the rest bucket's term. The rest of
  // this model's mass is 1 - sum q over those tokens, in double (q near 1 loses nothing that
  // matters: the rest term is weighted by the base's rest mass).
  double kld = 0, q_top = 0;
  for (size_t i = 0; i < base.ids.size(); ++i) {
    const double lp = base.logprobs[i];
    const double lq = row[base.ids[i]] - offset;
    kld += std::exp(lp) * (lp - lq);
    q_top += std::exp(lq);
  }
  if (std::isfinite(base.rest_logprob)) {
    const double lq_rest = std::log(std::max(1.0 - q_top, 1e-30));
    kld += std::exp(static_cast<double>(base.rest_logprob)) * (base.rest_logprob - lq_rest);
  }
  p.kld = std::max(kld, 0.0);  // rounding of the two sums can leave -1e-9 where they agree
  p.top1_agrees = !base.ids.empty() && base.ids[0] == s.argmax;
  p.nll_this = -(row[target] - offset);
  p.nll_base = -static_cast<double>(base.target_logprob);
  p.p_this = std::exp(-p.nll_this);
  p.p_base = std::exp(-p.nll_base);
  return p;
}

void KldSummary::Add(const KldPosition& p) {
  kld_.Add(p.kld);
  nll_this_.Add(p.nll_this);
  nll_base_.Add(p.nll_base);
  ln_ratio_.Add(p.nll_this - p.nll_base);
  top1_.Add(p.top1_agrees ? 1.0 : 0.0);
  delta_p_.Add(p.p_this - p.p_base);
  klds_.push_back(static_cast<float>(p.kld));
  delta_ps_.push_back(static_cast<float>(p.p_this - p.p_base));
}

void KldSummary::Print(std::FILE* out) const {
  const Perplexity base = PerplexityOf(nll_base_), self = PerplexityOf(nll_this_);
  const double ratio = std::exp(ln_ratio_.mean());
  std::fprintf(out, "====== KL divergence against the base (%lld positions) ======\n",
               static_cast<long long>(count()));
  std::fprintf(out, "PPL(base)                   : %10.6f +/- %.6f\n", base.ppl, base.error);
  std::fprintf(out, "PPL(this)                   : %10.6f +/- %.6f\n", self.ppl, self.error);
  std::fprintf(out, "PPL(this)/PPL(base)         : %10.6f +/- %.6f\n", ratio,
               ratio * ln_ratio_.stderr_of_mean());
  std::fprintf(out, "Mean ln(PPL(this)/PPL(base)): %10.6f +/- %.6f\n", ln_ratio_.mean(),
               ln_ratio_.stderr_of_mean());
  std::fprintf(out, "Mean KLD                    : %10.6f +/- %.6f\n", kld_.mean(),
               kld_.stderr_of_mean());
  std::fprintf(out, "KLD median / 99%% / max      : %10.6f / %.6f / %.6f\n", Quantile(klds_, 0.5),
               Quantile(klds_, 0.99), Quantile(klds_, 1.0));
  std::fprintf(out, "Top-1 agreement             : %10.4f +/- %.4f %%\n", 100 * top1_.mean(),
               100 * top1_.stderr_of_mean());
  std::fprintf(out, "Mean delta-p                : %10.4f +/- %.4f %%\n", 100 * delta_p_.mean(),
               100 * delta_p_.stderr_of_mean());
  const double rms = std::sqrt(delta_p_.mean_of_squares());
  std::fprintf(out, "RMS delta-p                 : %10.4f %%\n", 100 * rms);
  std::fprintf(out, "delta-p 1%% / median / 99%%   : %10.4f / %.4f / %.4f %%\n",
               100 * Quantile(delta_ps_, 0.01), 100 * Quantile(delta_ps_, 0.5),
               100 * Quantile(delta_ps_, 0.99));
}

}  // namespace gannet::cli
