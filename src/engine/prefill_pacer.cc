#include "engine/prefill_pacer.h"

#include <algorithm>
#include <cmath>

#include "base/status.h"

namespace gannet::engine {
namespace {

// Weight of the newest observation: about the last 4-8 steps matter.
constexpr double kAlpha = 0.25;

double Ema(double old_value, double sample) {
  return old_value == 0.0 ? sample : old_value + kAlpha * (sample - old_value);
}

}  // namespace

PrefillPacer::PrefillPacer(double itl_factor, int32_t min_chunk, int32_t max_chunk)
    : factor_(itl_factor), min_chunk_(min_chunk), max_chunk_(max_chunk) {
  GANNET_CHECK(min_chunk >= 1 && min_chunk <= max_chunk);
}

void PrefillPacer::Observe(double seconds, int32_t decodes, int32_t prompt_tokens) {
  if (!(seconds > 0.0) || !std::isfinite(seconds)) return;
  if (prompt_tokens <= 0) {
    if (decodes > 0) decode_s_ = Ema(decode_s_, seconds);
    return;
  }
  // The prompt's share of a mixed step is what it took beyond a decode-only step. Without decodes
  // the step's fixed cost (reading the weights once) is charged to the prompt tokens: a slight
  // overestimate, which errs towards smaller chunks.
  const double beside = decodes > 0 ? decode_s_ : 0.0;
  const double per_token = std::max(seconds - beside, 0.0) / prompt_tokens;
  if (per_token > 0.0) token_s_ = Ema(token_s_, per_token);
}

int32_t PrefillPacer::Limit() const {
  if (factor_ <= 0.0) return max_chunk_;
  if (decode_s_ == 0.0 || token_s_ == 0.0) return std::min(max_chunk_, 4 * min_chunk_);
  const double tokens = std::floor((factor_ - 1.0) * decode_s_ / token_s_);
  if (!(tokens >= min_chunk_)) return min_chunk_;  // also NaN
  return tokens >= max_chunk_ ? max_chunk_ : static_cast<int32_t>(tokens);
}

}  // namespace gannet::engine
