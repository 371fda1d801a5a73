#include "engine/prefill_pacer.h"

#include <algorithm>
#include <cmath>

#include "base/status.h"

namespace gannet::engine {
namespace {

// Weight kept by the older observations at each new one: about the last 4-8 steps matter.
constexpr double kDecay = 0.75;
// The decode-only steps' rows must have varied by about a row (weighted variance) before the
// line's slope is fitted from them.
constexpr double kMinRowsVariance = 0.25;

}  // namespace

PrefillPacer::PrefillPacer(double itl_factor, int32_t min_chunk, int32_t max_chunk)
    : factor_(itl_factor), min_chunk_(min_chunk), max_chunk_(max_chunk) {
  GANNET_CHECK(min_chunk >= 1 && min_chunk <= max_chunk);
}

double PrefillPacer::prompt_token_seconds() const { return tokens_ > 0.0 ? share_ / tokens_ : 0.0; }

void PrefillPacer::DecodeLine(double* a, double* b) const {
  const double mx = sx_ / w_, my = sy_ / w_;
  const double var = sxx_ / w_ - mx * mx;
  *b =
      var >= kMinRowsVariance ? std::max((sxy_ / w_ - mx * my) / var, 0.0) : prompt_token_seconds();
  *a = my - *b * mx;
}

double PrefillPacer::DecodeStepSeconds(int32_t rows) const {
  if (w_ == 0.0) return 0.0;
  double a = 0.0, b = 0.0;
  DecodeLine(&a, &b);
  return std::max(a + b * rows, 0.0);
}

void PrefillPacer::Observe(double seconds, int32_t decode_rows, int32_t prompt_tokens) {
  if (!(seconds > 0.0) || !std::isfinite(seconds) || decode_rows < 0) return;
  const double x = decode_rows;
  if (prompt_tokens <= 0) {
    if (decode_rows == 0) return;
    w_ = kDecay * w_ + 1.0;
    sx_ = kDecay * sx_ + x;
    sy_ = kDecay * sy_ + seconds;
    sxx_ = kDecay * sxx_ + x * x;
    sxy_ = kDecay * sxy_ + x * seconds;
    return;
  }
  // The prompt's share of the step: what it took beyond the decode-only step of its rows. While the
  // line's slope is unknown (every decode-only step had the same rows, x0), a decode row counts as
  // a prompt token: the step's excess over the x0-row step is spread over the prompt tokens and
  // the rows beyond x0. Without a decode-only step to go by, or in a step without decodes while the
  // slope is unknown, the whole step is charged to the prompt tokens: a slight overestimate (its
  // fixed cost, reading the weights once, is in it), which errs towards smaller chunks.
  double share = seconds, units = prompt_tokens;
  if (w_ > 0.0) {
    const double mx = sx_ / w_;
    if (sxx_ / w_ - mx * mx >= kMinRowsVariance) {
      share = seconds - DecodeStepSeconds(decode_rows);
    } else if (decode_rows > 0) {
      share = seconds - sy_ / w_;
      units = prompt_tokens + (x - mx);
    }
  }
  if (!(share > 0.0) || !(units > 0.0)) return;  // inconsistent with the model (noise)
  share_ = kDecay * share_ + share;
  tokens_ = kDecay * tokens_ + units;
}

int32_t PrefillPacer::Limit(int32_t decodes) const {
  if (factor_ <= 0.0) return max_chunk_;
  const double per_token = prompt_token_seconds();
  if (w_ == 0.0 || per_token == 0.0) return std::min(max_chunk_, 4 * min_chunk_);
  const double tokens = std::floor((factor_ - 1.0) * DecodeStepSeconds(decodes) / per_token);
  if (!(tokens >= min_chunk_)) return min_chunk_;  // also NaN
  return tokens >= max_chunk_ ? max_chunk_ : static_cast<int32_t>(tokens);
}

}  // namespace gannet::engine
