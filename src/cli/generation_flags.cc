// The sampling and stop-string options `gannet run` and `gannet chat` share.
#include <fstream>
#include <sstream>

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
  sub->add_option("--grammar-file", f->grammar_file,
                  "GBNF grammar the output must follow (llama.cpp's format)");
}

Status GenerationFlags::Check() {
  if (seed) sampling.seed = *seed;
  GANNET_RETURN_IF_ERROR(sampling.Validate());
  Result<std::shared_ptr<const engine::StopStrings>> s = engine::StopStrings::Compile(stop);
  if (!s.ok()) return Status::InvalidArgument("--stop: " + s.status().message());
  if (!grammar_file.empty()) {
    constexpr size_t kMaxGrammarFile = size_t{1} << 20;  // the parser's own limit on its text
    std::ifstream in(grammar_file, std::ios::binary);
    if (!in) return Status::NotFound("--grammar-file: cannot open " + grammar_file);
    std::string text(kMaxGrammarFile + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxGrammarFile) {
      return Status::InvalidArgument("--grammar-file: " + grammar_file + " is over 1 MiB");
    }
    Result<std::shared_ptr<const grammar::Grammar>> g = grammar::Grammar::Compile(text);
    if (!g.ok()) return Status::InvalidArgument("--grammar-file: " + g.status().message());
    grammar = std::move(g).value();
  }
  return Status::Ok();
}

}  // namespace gannet::cli
