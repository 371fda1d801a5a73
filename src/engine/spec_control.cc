#include "engine/spec_control.h"

#include <algorithm>
#include <cmath>

namespace gannet::engine {
namespace {

constexpr double kDecay = 0.97;         // per observed step: about the last 30 steps count
constexpr double kPriorRowShare = 0.1;  // before rows vary: a row costs 10% of a one-row step
// A draft is made only when its expected tokens per unit of step time beat not drafting by this
// factor (the estimates are noisy; a draft that barely pays on paper may not).
constexpr double kMinGain = 1.05;
// Per verification: the weight of what earlier verifications saw of the acceptance.
constexpr double kAcceptDecay = 0.7;
constexpr int32_t kMaxPause = 64;
constexpr int32_t kProbeNodes = 2;
// The acceptance an estimate starts from (SpecController::Estimate's prior), and its weight in
// draft tokens.
constexpr double kPrior = 0.6;
constexpr double kPriorTrials = 2.0;
// Decode-only steps observed before a batch of several sequences may draft.
constexpr int64_t kWarmSteps = 3;
// A batch's draft rows are charged this much more than the fit says. The fit (decode-only steps,
// one row per sequence) misses what only draft rows cost: a batch of 16 rows that drafts crosses
// the kernels' 16-token tiles (17 rows cost a second, one-token pass over every weight) and builds
// trees. At 16 clients drafts accepted 87% of the time, which the bare fit let through as a 1.03x
// gain, lowered the output rate to 0.95-0.98x. A lone sequence's drafts are far from the bar.
constexpr double kBatchMargin = 1.25;

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

double SpecCostModel::Threshold(int32_t seqs, int32_t rows, bool charge_draft) const {
  if (n_observed_ < kWarmSteps) {
    // Nothing measured yet (a burst of requests runs steps with prompt chunks for a while, which
    // are not observed). A lone sequence's step streams the weights, so a few rows more cost
    // little; a batch's may be compute-bound, where drafts would slow every step down until the
    // first measurement: it waits for its own steps to tell.
    return seqs <= 1 ? 0.25 : 1.0;
  }
  const double b = per_row_seconds(), a = fixed_seconds();
  if (a + b * rows <= 0) return 0.25;
  const double d = charge_draft ? draft_seconds_per_token() : 0.0;
  const double margin = seqs > 1 ? kBatchMargin : 1.0;
  return margin * (b + d) * std::max(seqs, 1) / (a + b * std::max(rows, 1));
}

SpecController::SpecController(int32_t max_nodes) : max_nodes_(std::max(max_nodes, 0)) {}

int32_t SpecController::BestLength(double p, double threshold, int32_t max_nodes) {
  // f(k) = (1 + p + ... + p^k) / (1 + threshold * k), f(0) = 1.
  double best = kMinGain;
  int32_t best_k = 0;
  double expected = 1.0, pk = 1.0;
  for (int32_t k = 1; k <= max_nodes; ++k) {
    pk *= p;
    expected += pk;
    const double f = expected / (1.0 + threshold * k);
    if (f > best) {
      best = f;
      best_k = k;
    }
  }
  return best_k;
}

double SpecController::acceptance(int32_t cls) const {
  const Estimate& e = est_[std::clamp(cls, 0, kClasses - 1)];
  return e.successes / e.trials;
}

int32_t SpecController::Budget(int32_t cls, double threshold, int32_t max_nodes, bool lone) {
  if (max_nodes <= 0) return 0;
  if (!(threshold > 0)) return max_nodes;
  // Where not even drafts that are always accepted would pay (a large batch is compute-bound, a
  // draft row costs about what a sequence's own row does), neither a draft nor a probe: a probe
  // judged by acceptance alone would pass. The estimate and pause stay for when the batch
  // shrinks.
  if (BestLength(1.0, threshold, max_nodes) == 0) return 0;
  Estimate& e = est_[cls];
  if (e.pause > 0) {
    if (--e.pause == 0) e.probe = true;
    return 0;
  }
  if (e.probe) {
    // A probe tests whether the class's drafts are accepted again, and costs rows either way.
    // In a batch, only where drafts of an unknown class (the prior) would be made: where its draft
    // rows cost nearly what its own do, a class drafts only on what it showed while the batch was
    // smaller. A lone sequence probes wherever drafts could pay at all: a costly drafter (the
    // self draft, whose token costs ~0.4 of a step, so drafting pays only above ~0.9 acceptance)
    // would otherwise never be tried again once its drafts were judged poor, not even on text it
    // then drafts right 9 times in 10. The backoff bounds what that costs: 2 draft tokens per
    // pause of up to kMaxPause steps.
    if (!lone && BestLength(kPrior, threshold, max_nodes) == 0) return 0;
    return std::min(kProbeNodes, max_nodes);
  }
  const int32_t k = BestLength(e.successes / e.trials, threshold, max_nodes);
  if (k == 0) {
    e.pause = e.backoff;
    e.backoff = std::min(e.backoff * 2, kMaxPause);
  }
  return k;
}

int32_t SpecController::NextBudget(double threshold, bool lone) {
  pending_ = 0;
  return Budget(0, threshold, max_nodes_, lone);
}

int32_t SpecController::FreeBudget(double threshold) const {
  if (max_nodes_ == 0) return 0;
  if (!(threshold > 0)) return max_nodes_;
  return BestLength(1.0, threshold, max_nodes_) > 0 ? max_nodes_ : 0;
}

int32_t SpecController::Keep(int32_t cls, double threshold, int32_t proposed, bool lone) {
  cls = std::clamp(cls, 1, kClasses - 1);
  const int32_t k = Budget(cls, threshold, std::min(proposed, max_nodes_), lone);
  if (k > 0) pending_ = cls;
  return k;
}

void SpecController::ObserveClass(int32_t cls, int32_t drafted, int32_t accepted) {
  if (drafted <= 0) return;
  Estimate& e = est_[std::clamp(cls, 0, kClasses - 1)];
  accepted = std::clamp(accepted, 0, drafted);
  e.successes = kAcceptDecay * e.successes + accepted;
  e.trials = kAcceptDecay * e.trials + accepted + (accepted < drafted ? 1 : 0);
}

void SpecController::Observe(int32_t drafted, int32_t accepted) {
  if (drafted <= 0) return;
  accepted = std::clamp(accepted, 0, drafted);
  ObserveClass(pending_, drafted, accepted);
  Estimate& e = est_[pending_];
  if (e.probe) {
    e.probe = false;
    // A probe that is all accepted ends the backoff, once the estimate is back at the prior's
    // acceptance at least; the next budget decides whether drafting pays. Below it, a lucky probe
    // of text the drafts fit badly (2 tokens accepted 9 times in 100 at 0.3) would restart the
    // pauses at 1 step, and their probes (each a lone sequence's draft pass or two) with them.
    if (accepted == drafted && e.successes >= kPrior * e.trials) e.backoff = 1;
  }
}

void SpecController::SeedFrom(const SpecController& shared) {
  for (int32_t c = 0; c < kClasses; ++c) {
    // The shared acceptance with the prior's weight (kPriorTrials draft tokens); the pause and
    // backoff stay this sequence's own.
    est_[c].successes = kPriorTrials * shared.acceptance(c);
    est_[c].trials = kPriorTrials;
  }
}

}  // namespace gannet::engine
