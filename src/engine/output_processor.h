// The output side of one generated sample (after vLLM v1's detokenizer / output processor): every
// sampled token goes through here once, on the engine's step, and comes out as
//   - whether it ends the sample: an end-of-generation token (not part of the output) or a stop
//     string completed by its text;
//   - the text it releases: whole UTF-8 characters only (IncrementalDecoder), never any byte that
//     may still turn out to belong to a stop string (StopMatcher).
// Front ends (server, chat, run) only print or send that text; none detokenizes or matches stop
// strings itself. max_tokens is the scheduler's (it owns the token counts and the KV reservation).
//
// Cost per token: the token's piece, one automaton step per byte of it, and the bytes released.
// Thread-safety: none; one per sample. The tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace gannet::engine {

struct TokenOutput {
  bool emitted = true;      // false: an end-of-generation token, which is not part of the output
  bool finished = false;    // the sample ends with this token (end of generation or a stop string)
  std::string text;         // text released by this token (possibly empty)
  int64_t text_offset = 0;  // bytes of the sample's decoded text before this token's
};

class OutputProcessor {
 public:
  // stop_at_eog: the tokenizer's end-of-generation ids end the sample. `stops` may be null.
  // render_tokens: control tokens whose text is part of the output (tool-call markers such as
  // [TOOL_CALLS]); every other control token is dropped from the text. An end-of-generation token
  // that ends the sample is never text.
  OutputProcessor(const Tokenizer& tokenizer, bool stop_at_eog,
                  std::shared_ptr<const StopStrings> stops, std::vector<int32_t> render_tokens = {})
      : tokenizer_(&tokenizer),
        decoder_(tokenizer, /*render_special=*/false, std::move(render_tokens)),
        stop_(std::move(stops)),
        stop_at_eog_(stop_at_eog) {}

  // REQUIRES: !finished().
  TokenOutput Process(int32_t token);
  // The text still held when the sample ends another way (length, cancel): incomplete UTF-8 as
  // U+FFFD, a held stop-string prefix as text. Empty after a stop.
  std::string Finish();

  bool finished() const { return finished_; }
  bool stop_string_matched() const { return stop_.matched(); }

 private:
  const Tokenizer* tokenizer_;
  IncrementalDecoder decoder_;
  StopMatcher stop_;
  bool stop_at_eog_;
  bool finished_ = false;
  int64_t decoded_bytes_ = 0;
};

}  // namespace gannet::engine
