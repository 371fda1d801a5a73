// PrefillPacer: how many prompt tokens a step may carry beside decoding sequences, from measured
// step times. A fixed token budget (e.g. 512) makes a step with a long prompt's chunk take seconds
// on a small CPU, and every stream decoding beside it waits that long for its next token. Like
// Sarathi-Serve's stall-free batching, the pacer sizes the chunk by time instead: a mixed step
// should take at most `itl_factor` times a decode-only step, so inter-token latency stays within
// that factor of its usual value while long prompts still make progress every step.
//
// The model is linear: a mixed step costs the decode-only step time plus a per-prompt-token time.
// Both are exponential moving averages of what the step thread observes, so the pacer follows
// changes in batch size, context length and machine load.
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

  // A finished step: wall time in seconds, the sequences it decoded (one token each) and the prompt
  // tokens (chunks) it computed.
  void Observe(double seconds, int32_t decodes, int32_t prompt_tokens);

  // Prompt tokens the next step may carry if it also decodes, in [min_chunk, max_chunk]. Before
  // both times have been observed: a cautious default (min(max_chunk, 4 * min_chunk)).
  int32_t Limit() const;

  double decode_step_seconds() const { return decode_s_; }  // 0 until observed
  double prompt_token_seconds() const { return token_s_; }  // 0 until observed

 private:
  double factor_;
  int32_t min_chunk_, max_chunk_;
  double decode_s_ = 0.0;
  double token_s_ = 0.0;
};

}  // namespace gannet::engine
