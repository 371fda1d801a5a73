// PrefillPacer: how many prompt tokens a step may carry beside decoding sequences, from measured
// step times. A fixed token budget (e.g. 512) makes a step with a long prompt's chunk take seconds
// on a small CPU, and every stream decoding beside it waits that long for its next token. Like
// Sarathi-Serve's stall-free batching, the pacer sizes the chunk by time instead: a mixed step
// should take at most `itl_factor` times a decode-only step of the same decodes, so inter-token
// latency stays within that factor of its usual value while long prompts still make progress
// every step.
//
// The model is linear: a step costs a + b * decodes + c * prompt_tokens (decodes: the rows of the
// sequences that decode in it, a token each and, under speculative decoding, their draft rows; a
// step is asked for before its drafts are added, by its decoding sequences, i.e. without drafts).
// Counted by sequences, a step's draft rows were charged to its prompt tokens: on the default
// model with n-gram drafts and 16 clients, a prompt token's cost went from 0.5 to 1.3 ms and the
// chunks from 27 to 8 tokens within a few steps.
// - The decode-only step, a + b * decodes, is a line fitted by exponentially weighted least
//   squares over the steps that only decode. Its slope matters: a decode step of 16 sequences can
//   take twice one sequence's (the batch turns compute-bound), and a pacer that measured the lone
//   sequence's step only would charge that growth to the prompt tokens of a burst of requests,
//   and admit them a few tokens per step. Until the observed steps have differed enough in decodes
//   (one batch size seen, or two next to each other), the slope leans on a prior: a decode
//   costs what a prompt token does.
// - A prompt token's cost c is the exponentially weighted ratio of the mixed steps' prompt share
//   (the step's time less the decode-only step of its decodes) to their prompt tokens.
// Both follow changes in batch size, context length and machine load.
// - The decode line is learnt only from decode-only steps, and under a steady stream of requests a
//   step without prompt tokens may never come: every step then carries the cautious first chunk,
//   and the prompt token's cost, charged the whole step, grows step by step (16 clients of
//   bench/serving.py on a fresh server: 16 prompt tokens per step throughout, the cost measured at
//   2.3 times its value). So the pacer asks for a decode-only step itself (a limit of 0) when it
//   has none yet, and again after kRefreshSteps steps without one, so that the line follows the
//   batch as it grows.
//
// Thread-safety: none (the serving engine's step thread owns it).
#pragma once

#include <cstdint>

namespace gannet::engine {

class PrefillPacer {
 public:
  // itl_factor <= 0 disables pacing (Limit() returns max_chunk). REQUIRES: 1 <= min_chunk <=
  // max_chunk.
  PrefillPacer(double itl_factor, int32_t min_chunk, int32_t max_chunk);

  // A finished step: wall time in seconds, the rows of the sequences it decoded (their draft rows
  // included) and the prompt tokens (chunks) it computed.
  void Observe(double seconds, int32_t decode_rows, int32_t prompt_tokens);

  // Prompt tokens the next step may carry if it also decodes `decodes` sequences, in [min_chunk,
  // max_chunk], or 0 (decodes > 0 only): the next step should only decode, because no decode-only
  // step has been observed yet, or none in the last kRefreshSteps steps that decoded. After a
  // decode-only step, before a prompt token's cost is known: a cautious default (min(max_chunk, 4
  // * min_chunk)).
  int32_t Limit(int32_t decodes) const;

  // Steps with decodes and prompt tokens after which the pacer asks for a decode-only step again.
  static constexpr int32_t kRefreshSteps = 16;

  // The estimated decode-only step of `decodes` sequences (0 until one is observed), and a prompt
  // token's cost (0 until observed).
  double DecodeStepSeconds(int32_t decodes) const;
  double prompt_token_seconds() const;

 private:
  // The decode line through the decode-only steps' weighted means, its slope (1 - prior) *
  // own_slope + prior * c: own_slope their least-squares slope (at least 0), prior in (0, 1]
  // the weight of c, the larger the less their decodes have varied.
  struct Line {
    double decodes = 0.0, seconds = 0.0, own_slope = 0.0, prior = 1.0;
  };
  Line DecodeLine() const;  // REQUIRES: w_ > 0

  double factor_;
  int32_t min_chunk_, max_chunk_;
  // Exponentially weighted sums over the decode-only steps of 1, decodes, seconds, decodes^2
  // and decodes * seconds.
  double w_ = 0.0, sx_ = 0.0, sy_ = 0.0, sxx_ = 0.0, sxy_ = 0.0;
  // Exponentially weighted sums over the mixed and prompt-only steps of the prompt's share of the
  // step (seconds) and of its tokens.
  double share_ = 0.0, tokens_ = 0.0;
  // Steps that decoded beside prompt tokens since the last decode-only step, up to kRefreshSteps.
  int32_t mixed_since_decode_only_ = 0;
};

}  // namespace gannet::engine
