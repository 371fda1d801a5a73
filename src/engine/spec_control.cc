#include "engine/spec_control.h"

#include <algorithm>
#include <cmath>

namespace gannet::engine {
namespace {

constexpr double kDecay = 0.97;         // per observed step: about the last 30 steps count
constexpr double kPriorRowShare = 0.1;  // before rows vary: a row costs 10% of a one-row step
constexpr double kMargin = 1.25;        // a draft must beat the threshold by this factor
constexpr double kYieldRate = 0.3;      // weight of the newest verification in the yield average
constexpr int32_t kMaxPause = 64;
constexpr int32_t kProbeNodes = 2;
// Decode-only steps observed before a batch of several sequences may draft.
constexpr int64_t kWarmSteps = 3;

}  // namespace

void SpecCostModel::Observe(int32_t rows, double seconds) {
  if (rows <= 0 || !(seconds > 0) || !std::isfinite(seconds)) return;
  const double x = rows, y = seconds;
  ++n_observed_;
  w_ = kDecay * w_ + 1;
  sx_ = kDecay * sx_ + x;
  sy_ = kDecay * sy_ + y;
  sxx_ = kDecay * sxx_ + x * x;
  sxy_ = kDecay * sxy_ + x * y;
}

double SpecCostModel::per_row_seconds() const {
  if (w_ <= 0) return 0;
  const double mx = sx_ / w_, my = sy_ / w_;
  const double var = sxx_ / w_ - mx * mx;
  // Rows that barely varied say nothing about the slope: assume the prior share.
  if (var < 0.25) return kPriorRowShare * my / (1.0 + kPriorRowShare * mx);
  const double b = (sxy_ / w_ - mx * my) / var;
  return std::clamp(b, 0.0, my / std::max(1.0, mx));
}

double SpecCostModel::fixed_seconds() const {
  if (w_ <= 0) return 0;
  return std::max(0.0, sy_ / w_ - per_row_seconds() * sx_ / w_);
}

void SpecCostModel::ObserveDraft(int32_t tokens, double seconds) {
  if (tokens <= 0 || !(seconds >= 0) || !std::isfinite(seconds)) return;
  draft_tokens_ = kDecay * draft_tokens_ + tokens;
  draft_seconds_ = kDecay * draft_seconds_ + seconds;
}

double SpecCostModel::draft_seconds_per_token() const {
  return draft_tokens_ > 0 ? draft_seconds_ / draft_tokens_ : 0;
}

double SpecCostModel::Threshold(int32_t seqs, int32_t rows) const {
  if (n_observed_ < kWarmSteps) {
    // Nothing measured yet (a burst of requests runs steps with prompt chunks for a while, which
    // are not observed). A lone sequence's step streams the weights, so a few rows more cost
    // little; a batch's may be compute-bound, where drafts would slow every step down until the
    // first measurement: it waits for its own steps to tell.
    return seqs <= 1 ? 0.25 : 1.0;
  }
  const double b = per_row_seconds(), a = fixed_seconds();
  if (a + b * rows <= 0) return 0.25;
  return (b + draft_seconds_per_token()) * std::max(seqs, 1) / (a + b * std::max(rows, 1));
}

SpecController::SpecController(int32_t max_nodes)
    : max_nodes_(std::max(max_nodes, 0)), budget_(std::min(std::max(max_nodes, 0), 4)) {}

int32_t SpecController::NextBudget(double threshold) {
  if (max_nodes_ == 0) return 0;
  // A draft row yields one token at most: past this bar no acceptance pays (a large batch is
  // compute-bound), so neither a draft nor a probe. A probe would pass, since it is judged by
  // acceptance alone, and reset the backoff: a sequence whose drafts are always accepted then
  // drafted every third step of a 16-sequence batch, 0.75x of no speculation. The yield and pause
  // stay as they are for when the batch shrinks.
  if (threshold * kMargin >= 1.0) return 0;
  if (pause_ > 0) {
    if (--pause_ == 0) {
      // Probe: a small draft, judged on its own.
      yield_ = std::max(yield_, threshold * kMargin * 1.01);
      budget_ = std::min(kProbeNodes, max_nodes_);
    }
    return 0;
  }
  if (yield_ < threshold * kMargin) {
    pause_ = backoff_;
    backoff_ = std::min(backoff_ * 2, kMaxPause);
    return 0;
  }
  return budget_;
}

void SpecController::Observe(int32_t drafted, int32_t accepted) {
  if (drafted <= 0) return;
  yield_ += kYieldRate * (static_cast<double>(accepted) / drafted - yield_);
  if (2 * accepted >= drafted) {
    budget_ = std::min(budget_ * 2, max_nodes_);
    backoff_ = 1;
  } else if (4 * accepted < drafted) {
    budget_ = std::max(budget_ / 2, std::min(kProbeNodes, max_nodes_));
  }
}

}  // namespace gannet::engine
