// The engine options `run`, `chat` and `serve` share: speculative decoding's flags, and the
// settings read from the environment.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "engine/draft_model.h"

namespace gannet::cli {

void AddSpecFlags(CLI::App* sub, SpecFlags* f) {
  sub->add_option(
         "--spec", f->method,
         "Speculative decoding: none; ngram (drafts from the text's own earlier "
         "tokens); self (drafts from the model itself with an output head of its most "
         "frequent tokens); ngram+self (ngram where the text has a match, self where it has "
         "none); or draft:FILE (drafts from a smaller GGUF model with the same "
         "vocabulary). Drafts are verified as a token tree; the output is unchanged")
      ->capture_default_str();
  sub->add_option(
         "--spec-self-tokens", f->self_tokens,
         "--spec self and ngram+self: tokens of the draft's output head (the most frequent "
         "ones)")
      ->capture_default_str();
  sub->add_option("--spec-self-layers", f->self_layers,
                  "--spec self and ngram+self: layers the draft runs before its head (0: all)")
      ->capture_default_str();
  sub->add_option("--spec-max-tokens", f->max_tokens,
                  "Most draft tokens per sequence per step (1-" +
                      std::to_string(engine::kMaxDraftTokens) + ")")
      ->capture_default_str();
}

Status SpecFlags::Check() const {
  Result<engine::SpecMethod> m = engine::ParseSpecMethod(method);
  if (!m.ok()) return Status::InvalidArgument("--spec: " + m.status().message());
  if (max_tokens < 1 || max_tokens > engine::kMaxDraftTokens) {
    return Status::InvalidArgument("--spec-max-tokens must be in [1, " +
                                   std::to_string(engine::kMaxDraftTokens) + "], got " +
                                   std::to_string(max_tokens));
  }
  if (self_tokens < 1) {
    return Status::InvalidArgument("--spec-self-tokens must be positive, got " +
                                   std::to_string(self_tokens));
  }
  if (self_layers < 0) {
    return Status::InvalidArgument("--spec-self-layers must not be negative, got " +
                                   std::to_string(self_layers));
  }
  return Status::Ok();
}

Status SpecFlags::Apply(const engine::ModelRunner& target, engine::EngineOptions* options) {
  GANNET_RETURN_IF_ERROR(Check());
  std::string path;
  const engine::SpecMethod m = *engine::ParseSpecMethod(method, &path);
  if (m == engine::SpecMethod::kDraftModel && draft == nullptr) {
    Result<std::unique_ptr<engine::ModelRunner>> loaded = engine::LoadDraftModel(path, target);
    if (!loaded.ok()) return Status::InvalidArgument("--spec: " + loaded.status().message());
    draft = std::move(loaded).value();
  }
  options->spec = m;
  options->spec_max_tokens = max_tokens;
  options->spec_self_tokens = self_tokens;
  options->spec_self_layers = self_layers;
  options->draft_model = m == engine::SpecMethod::kDraftModel ? draft.get() : nullptr;
  return Status::Ok();
}

std::string SpecFlags::Name() const {
  std::string path;
  Result<engine::SpecMethod> m = engine::ParseSpecMethod(method, &path);
  if (m.ok() && *m == engine::SpecMethod::kDraftModel) {
    return "draft:" + std::filesystem::path(path).filename().string();
  }
  if (m.ok() && (*m == engine::SpecMethod::kSelf || *m == engine::SpecMethod::kNgramSelf)) {
    return method + ":" + std::to_string(self_tokens) +
           (self_layers > 0 ? ":" + std::to_string(self_layers) : "");
  }
  return method;
}

void ApplyEngineEnvironment(engine::EngineOptions* options) {
  if (const char* v = std::getenv("GANNET_GRAMMAR_OVERLAP"); v != nullptr) {
    options->grammar_overlap = std::string(v) != "0";
  }
}

}  // namespace gannet::cli
