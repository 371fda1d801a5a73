// The engine options `run`, `chat` and `serve` share: speculative decoding's flags, and the
// settings read from the environment.
#include <cstdlib>
#include <string>

#include "cli/commands.h"

namespace gannet::cli {

void AddSpecFlags(CLI::App* sub, SpecFlags* f) {
  sub->add_option("--spec", f->method,
                  "Speculative decoding: none, or ngram (drafts from the text's own earlier "
                  "tokens, verified as a token tree; the output is unchanged)")
      ->capture_default_str();
  sub->add_option("--spec-max-tokens", f->max_tokens,
                  "Most draft tokens per sequence per step (1-" +
                      std::to_string(engine::kMaxDraftTokens) + ")")
      ->capture_default_str();
}

Status SpecFlags::Apply(engine::EngineOptions* options) const {
  Result<engine::SpecMethod> m = engine::ParseSpecMethod(method);
  if (!m.ok()) return Status::InvalidArgument("--spec: " + m.status().message());
  if (max_tokens < 1 || max_tokens > engine::kMaxDraftTokens) {
    return Status::InvalidArgument("--spec-max-tokens must be in [1, " +
                                   std::to_string(engine::kMaxDraftTokens) + "], got " +
                                   std::to_string(max_tokens));
  }
  options->spec = *m;
  options->spec_max_tokens = max_tokens;
  return Status::Ok();
}

void ApplyEngineEnvironment(engine::EngineOptions* options) {
  if (const char* v = std::getenv("GANNET_GRAMMAR_OVERLAP"); v != nullptr) {
    options->grammar_overlap = std::string(v) != "0";
  }
}

}  // namespace gannet::cli
