// Log-probabilities of tokens for the API's `logprobs` / `top_logprobs` fields.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace gannet {

struct TokenLogprob {
  int32_t id;
  float logprob;  // natural log of the token's probability under softmax(logits)
};

// Computes log_softmax(logits) for `chosen` and for the n most likely tokens.
//
// `logits` are the values the model's distribution is reported from: gannet reports the
// post-logit-bias logits, before penalties, truncation and temperature (Sampler::Sample leaves
// exactly these in its buffer). out_top is cleared and filled with at most n entries, most likely
// first, ties broken by lower id; NaN and -infinity logits are never listed (a banned token has no
// finite log-probability), so out_top may hold fewer than n. If chosen_logprob is not null it
// receives chosen's log-probability (-infinity when chosen is out of range, banned or NaN).
// Does not allocate once out_top has capacity for n entries. n <= 0 leaves out_top empty.
void TopLogprobs(std::span<const float> logits, int32_t chosen, int32_t n,
                 std::vector<TokenLogprob>& out_top, float* chosen_logprob);

}  // namespace gannet
