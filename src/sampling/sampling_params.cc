#include "sampling/sampling_params.h"

#include <cmath>
#include <cstdio>
#include <string>

namespace gannet {
namespace {

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

Status Bad(const char* field, const std::string& rule, double got) {
  return Status::InvalidArgument(std::string(field) + " must be " + rule + " (got " + Num(got) +
                                 ")");
}

}  // namespace

Status SamplingParams::Validate() const {
  // Each test is written so that NaN fails it (comparisons with NaN are false).
  if (!(temperature >= 0.0f && std::isfinite(temperature))) {
    return Bad("temperature", ">= 0 and finite", temperature);
  }
  if (top_k < 0) return Bad("top_k", ">= 0 (0 = off)", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Bad("top_p", "in (0, 1] (1 = off)", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Bad("min_p", "in [0, 1] (0 = off)", min_p);
  if (!(repeat_penalty > 0.0f && std::isfinite(repeat_penalty))) {
    return Bad("repeat_penalty", "> 0 and finite (1 = off)", repeat_penalty);
  }
  if (repeat_last_n < 0 || repeat_last_n > kMaxRepeatLastN) {
    return Bad("repeat_last_n",
               "in [0, " + std::to_string(kMaxRepeatLastN) + "] (0 = penalties off)",
               repeat_last_n);
  }
  if (!std::isfinite(presence_penalty)) return Bad("presence_penalty", "finite", presence_penalty);
  if (!std::isfinite(frequency_penalty))
    return Bad("frequency_penalty", "finite", frequency_penalty);
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0) {
      return Status::InvalidArgument("logit_bias token id must be >= 0 (got " + std::to_string(id) +
                                     ")");
    }
    if (std::isnan(bias) || bias == INFINITY) {
      return Status::InvalidArgument("logit_bias for token " + std::to_string(id) +
                                     " must be a number below +infinity (got " + Num(bias) + ")");
    }
  }
  return Status::Ok();
}

Status SamplingParams::Validate(int32_t n_vocab) const {
  GANNET_RETURN_IF_ERROR(Validate());
  for (const auto& [id, bias] : logit_bias) {
    if (id >= n_vocab) {
      return Status::InvalidArgument("logit_bias token id " + std::to_string(id) +
                                     " is outside the vocabulary of " + std::to_string(n_vocab) +
                                     " tokens");
    }
  }
  return Status::Ok();
}

}  // namespace gannet
