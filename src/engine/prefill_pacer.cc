#include "engine/prefill_pacer.h"

#include <algorithm>
#include <cmath>

#include "base/status.h"

namespace gannet::engine {
namespace {

// Weight kept by the older observations at each new one: about the last 4-8 steps matter.
constexpr double kDecay = 0.75;
// The prior's weight on the decode line's slope, in squared decodes: the decode-only steps'
// weighted sum of squared deviations from their mean decodes must pass this before their own slope
// counts for more than half (steps of two batch sizes 4 apart, weighted alike, about reach it).
// Steps of batch sizes next to each other (15 and 16 sequences) are too close for their slope to be
// more than the steps' jitter.
constexpr double kSlopePrior = 16.0;

}  // namespace

PrefillPacer::PrefillPacer(double itl_factor, int32_t min_chunk, int32_t max_chunk)
    : factor_(itl_factor), min_chunk_(min_chunk), max_chunk_(max_chunk) {
  GANNET_CHECK(min_chunk >= 1 && min_chunk <= max_chunk);
}

double PrefillPacer::prompt_token_seconds() const { return tokens_ > 0.0 ? share_ / tokens_ : 0.0; }

PrefillPacer::Line PrefillPacer::DecodeLine() const {
  Line line;
  line.decodes = sx_ / w_;
  line.seconds = sy_ / w_;
  const double sxx = std::max(sxx_ - w_ * line.decodes * line.decodes, 0.0);
  const double sxy = sxy_ - w_ * line.decodes * line.seconds;
  line.own_slope = sxx > 0.0 ? std::max(sxy / sxx, 0.0) : 0.0;
  line.prior = kSlopePrior / (kSlopePrior + sxx);
  return line;
}

double PrefillPacer::DecodeStepSeconds(int32_t decodes) const {
  if (w_ == 0.0) return 0.0;
  const Line line = DecodeLine();
  const double slope = (1.0 - line.prior) * line.own_slope + line.prior * prompt_token_seconds();
  return std::max(line.seconds + slope * (decodes - line.decodes), 0.0);
}

void PrefillPacer::Observe(double seconds, int32_t decode_rows, int32_t prompt_tokens) {
  if (!(seconds > 0.0) || !std::isfinite(seconds) || decode_rows < 0) return;
  const double x = decode_rows;
  if (prompt_tokens <= 0) {
    if (decode_rows == 0) return;
    mixed_since_decode_only_ = 0;
    w_ = kDecay * w_ + 1.0;
    sx_ = kDecay * sx_ + x;
    sy_ = kDecay * sy_ + seconds;
    sxx_ = kDecay * sxx_ + x * x;
    sxy_ = kDecay * sxy_ + x * seconds;
    return;
  }
  // The prompt's share of the step: what it took beyond the decode-only step of its decodes. The
  // line's slope is in part the prompt token's cost c itself (the prior's part): a decode beyond
  // the line's mean counts that much as a prompt token, so the share and the tokens it is spread
  // over are
  //   share = seconds - mean seconds - (1 - prior) * own slope * (decodes - mean decodes)
  //   units = prompt tokens + prior * (decodes - mean decodes).
  // Before any decode-only step the whole step is charged to the prompt tokens: a slight
  // overestimate (its fixed cost, reading the weights once, is in it), which errs towards smaller
  // chunks. A step the model cannot place is left out: share not positive (noise), or units
  // below half its prompt tokens (a step of fewer decodes than the line's mean while the slope is
  // mostly the prior's, where a few tokens would carry the jitter of the whole step: 2 prompt
  // tokens beside 15 decodes after steps of 16 once set c to three times its value).
  // (Counted up to the refresh only: without pacing no decode-only step need ever come.)
  if (decode_rows > 0 && mixed_since_decode_only_ < kRefreshSteps) ++mixed_since_decode_only_;
  double share = seconds, units = prompt_tokens;
  if (w_ > 0.0) {
    const Line line = DecodeLine();
    share = seconds - line.seconds - (1.0 - line.prior) * line.own_slope * (x - line.decodes);
    units = prompt_tokens + line.prior * (x - line.decodes);
  }
  if (!(share > 0.0) || !(units >= 0.5 * prompt_tokens)) return;
  share_ = kDecay * share_ + share;
  tokens_ = kDecay * tokens_ + units;
}

int32_t PrefillPacer::Limit(int32_t decodes) const {
  if (factor_ <= 0.0) return max_chunk_;
  if (decodes > 0 && (w_ == 0.0 || mixed_since_decode_only_ >= kRefreshSteps)) return 0;
  const double per_token = prompt_token_seconds();
  if (w_ == 0.0 || per_token == 0.0) return std::min(max_chunk_, 4 * min_chunk_);
  const double tokens = std::floor((factor_ - 1.0) * DecodeStepSeconds(decodes) / per_token);
  if (!(tokens >= min_chunk_)) return min_chunk_;  // also NaN
  return tokens >= max_chunk_ ? max_chunk_ : static_cast<int32_t>(tokens);
}

}  // namespace gannet::engine
