// The speculative decoding options of `run`, `chat` and `serve`.
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

}  // namespace gannet::cli
