// SamplingParams: the knobs of one sequence's sampler, as a plain config struct.
//
// Defaults follow llama.cpp's common sampler. A value that switches a stage off is named next
// to each field. Validate() is the boundary check for values that arrive from users (server
// requests, CLI flags); a Sampler may assume its params passed it.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "base/status.h"

namespace gannet {

// Largest accepted repeat_last_n: the penalty window is allocated once per sampler, so an
// absurd window from a request must be refused instead of allocated.
inline constexpr int32_t kMaxRepeatLastN = 1 << 20;

struct SamplingParams {
  // 0 = greedy argmax (after logit bias and penalties). Must be >= 0 and finite.
  float temperature = 0.8f;
  // Keep the k most likely tokens. 0 = off. Must be >= 0.
  int32_t top_k = 40;
  // Keep the smallest most-likely prefix whose probability mass reaches top_p. 1 = off. In (0, 1].
  float top_p = 0.95f;
  // Keep tokens whose probability is at least min_p times the most likely one's. 0 = off. In [0,
  // 1].
  float min_p = 0.05f;
  // llama.cpp's repetition penalty: a penalized token's logit is divided by it when positive and
  // multiplied by it when not. 1 = off. Must be > 0 and finite.
  float repeat_penalty = 1.0f;
  // How many of the most recently accepted tokens the three penalties look at. 0 = penalties off.
  // To penalize the whole context, pass the context length. In [0, kMaxRepeatLastN].
  int32_t repeat_last_n = 64;
  // OpenAI's penalties over the same window: logit -= count * frequency + (count > 0) * presence.
  // 0 = off. Must be finite (OpenAI's API accepts [-2, 2]; the server may narrow the range).
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // RNG seed. Unset = a seed drawn from the operating system when the Sampler is built
  // (Sampler::seed() reports which, so a run can be repeated).
  std::optional<uint64_t> seed = std::nullopt;
  // (token id, bias) pairs added to the logits before anything else; repeated ids add up.
  // A bias of -infinity bans a token. Biases must not be NaN or +infinity.
  std::vector<std::pair<int32_t, float>> logit_bias = {};

  // OK, or InvalidArgument naming the first field out of range and its value.
  Status Validate() const;
  // Also checks that every logit_bias id lies in [0, n_vocab).
  Status Validate(int32_t n_vocab) const;
};

}  // namespace gannet
