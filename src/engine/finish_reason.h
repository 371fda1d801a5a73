// Why a generated sample ended: one enum for the scheduler, the output processor, the Engine and
// every front end (the words are OpenAI's finish_reason where it has one).
#pragma once

namespace gannet::engine {

enum class FinishReason {
  kStop,       // an end-of-generation token or a stop string
  kLength,     // max_tokens reached
  kCancelled,  // Cancel(), a drain that ran out of time
  kError,      // the request failed (its result's status says why)
};

// "stop", "length", "cancelled", "error".
const char* FinishReasonName(FinishReason reason);

}  // namespace gannet::engine
