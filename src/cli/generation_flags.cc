// The sampling and stop-string options `gannet run` and `gannet chat` share.
#include "cli/commands.h"
#include "engine/stop_strings.h"

namespace gannet::cli {

void AddGenerationFlags(CLI::App* sub, GenerationFlags* f) {
  SamplingParams& s = f->sampling;
  sub->add_option("--temp", s.temperature, "Temperature (0: greedy)")->capture_default_str();
  sub->add_option("--top-k", s.top_k, "Top-k (0: off)")->capture_default_str();
  sub->add_option("--top-p", s.top_p, "Top-p (1: off)")->capture_default_str();
  sub->add_option("--min-p", s.min_p, "Min-p (0: off)")->capture_default_str();
  sub->add_option("--repeat-penalty", s.repeat_penalty, "Repetition penalty (1: off)")
      ->capture_default_str();
  sub->add_option("--repeat-last-n", s.repeat_last_n, "Tokens the repetition penalty looks back")
      ->capture_default_str();
  sub->add_option("--presence-penalty", s.presence_penalty, "Presence penalty")
      ->capture_default_str();
  sub->add_option("--frequency-penalty", s.frequency_penalty, "Frequency penalty")
      ->capture_default_str();
  sub->add_option("-s,--seed", f->seed, "Random seed (default: random)");
  sub->add_option("--stop", f->stop, "Stop string: the text ends before it (repeatable)")
      ->allow_extra_args(false);
}

Status GenerationFlags::Check() {
  if (seed) sampling.seed = *seed;
  GANNET_RETURN_IF_ERROR(sampling.Validate());
  Result<std::shared_ptr<const engine::StopStrings>> s = engine::StopStrings::Compile(stop);
  if (!s.ok()) return Status::InvalidArgument("--stop: " + s.status().message());
  return Status::Ok();
}

}  // namespace gannet::cli
