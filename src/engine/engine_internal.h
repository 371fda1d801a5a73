// The engine's per-request and per-sample state (Engine::Active, Engine::SampleJob), shared by
// the files that implement Engine: engine.cc (admission, the step loop, outputs),
// engine_grammar.cc (constrained decoding: masks, their prefetching, lazy triggers) and
// engine_spec.cc (speculative decoding: the drafts a step proposes). Internal to
// the engine module; nothing outside src/engine includes it.
//
// Thread-safety: an Active belongs to the engine's step thread, except that during Sample each
// sampling job touches only its own sample's entries (samplers[i], outputs[i], matchers[i],
// mask_words[i], failures[i], watches[i], spec[i], history[i]).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "engine/output_processor.h"

namespace gannet::engine {

inline double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

struct Engine::Active {
  RequestId id = 0;
  GenerationRequest request;
  GenerationCallbacks callbacks;
  std::vector<Sampler> samplers;         // one per sample
  std::vector<OutputProcessor> outputs;  // one per sample
  std::vector<std::string> tails;        // text released after a sample's last on_token
  // Constrained decoding (request.grammar): the shared mask cache, one matcher and mask per sample.
  std::shared_ptr<const grammar::MaskCache> masks;
  std::vector<grammar::Matcher> matchers;
  std::vector<std::vector<uint32_t>> mask_words;
  std::vector<Status> failures;  // per sample: a mask past its work budget ended it
  // Lazy grammar: per sample, the watch for its first trigger (empty: the grammar always applies).
  std::vector<grammar::TriggerWatch> watches;
  bool Constrained(size_t sample) const {
    return masks != nullptr && (watches.empty() || watches[sample].fired());
  }
  std::vector<int32_t> prefetched;  // per sample: its MaskPrefetcher task this step, or -1
  // Speculative decoding: per sample, its draft control and its tokens (prompt and emitted
  // output), which its drafts continue.
  std::vector<SpecController> spec;
  std::vector<std::vector<int32_t>> history;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // positions its first step found in the prefix cache
  bool scheduled_once = false;
  std::chrono::steady_clock::time_point submitted, first_scheduled, first_token, last_token;
};

// One (sequence, sample) of a step that produced logits.
struct Engine::SampleJob {
  struct Token {
    int32_t token = 0;
    float logprob = 0.0f;
    std::vector<TokenLogprob> top;
    TokenOutput output;
  };
  size_t row = 0;  // the entry's first logits row
  const ScheduledSeq* entry = nullptr;
  Active* active = nullptr;   // nullptr: the request was cancelled since Schedule()
  int32_t index = 0;          // sample index within the request
  std::vector<Token> tokens;  // sampled, in order: several when draft tokens were accepted
  std::vector<std::pair<int64_t, int64_t>> moves;  // K/V slots of accepted draft tokens to move
  Draft draft;                                     // for the sequence's next step
  int32_t draft_budget = 0;         // draft tokens the drafter is to propose (ProposeDrafts)
  int32_t draft_model_budget = -1;  // of which a model's passes may make (DraftRequest)
  // This step's verification of the sequence's draft, for the engine's shared estimates
  // (SpecController::ObserveClass): the draft's class, tokens and accepted tokens (class -1: none).
  int32_t verified_class = -1, verified_drafted = 0, verified_accepted = 0;
  std::vector<SampledToken> emitted;  // DeliverTokens' results, for CollectOutputs
};

// The request error for a grammar whose token mask ran past its work budget. `where`: "at the
// start of the output" or "partway through the output".
Status GrammarTooCostly(const char* where);

}  // namespace gannet::engine
