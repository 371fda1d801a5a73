// The bytes one generated token reads from memory (weights and KV cache): with the measured read
// bandwidth, the memory roofline of decoding (`gannet bench` reports the share reached, `gannet
// doctor` estimates tokens/s from it). A pure function of the model file and the positions.
#pragma once

#include <cstdint>

#include "engine/model_runner.h"

namespace gannet::cli {

// Bytes one decode step reads from memory, on average over the tg tokens of a run.
struct DecodeBytes {
  int64_t weights =
      0;          // every weight tensor once; of the embedding one row unless it is also the output
  double kv = 0;  // K and V of every position each layer attends to
  double total() const { return static_cast<double>(weights) + kv; }
};

// n_gen tokens generated one at a time after a prompt of n_prompt tokens.
DecodeBytes BytesPerGeneratedToken(const engine::ModelRunner& eng, int64_t n_prompt, int64_t n_gen);

}  // namespace gannet::cli
