// The sampling and stop-string options `gannet run` and `gannet chat` share.
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/stop_strings.h"
#include "grammar/json_schema.h"

namespace gannet::cli {
namespace {

// Grammar and schema files: at most 1 MiB (the grammar parser's own limit on its text).
constexpr size_t kMaxGrammarFile = size_t{1} << 20;

Result<std::shared_ptr<const grammar::Grammar>> CompileSchemaFile(const std::string& path) {
  std::string text;
  GANNET_ASSIGN_OR_RETURN(text, ReadTextFile(path, "--json-schema file", kMaxGrammarFile));
  nlohmann::ordered_json schema;
  try {
    schema = nlohmann::ordered_json::parse(text);  // ordered: properties keep their order
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument("--json-schema: " + path + " is not JSON: " + e.what());
  }
  Result<std::shared_ptr<const grammar::Grammar>> g = grammar::CompileJsonSchema(schema);
  if (!g.ok()) return Status::InvalidArgument("--json-schema: " + g.status().message());
  return g;
}

}  // namespace

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
  CLI::Option* grammar =
      sub->add_option("--grammar-file", f->grammar_file,
                      "GBNF grammar the output must follow (llama.cpp's format)");
  sub->add_option("--json-schema", f->json_schema_file,
                  "JSON Schema file: the output is JSON valid against it")
      ->excludes(grammar);
}

Status GenerationFlags::Check() {
  if (seed) sampling.seed = *seed;
  GANNET_RETURN_IF_ERROR(sampling.Validate());
  Result<std::shared_ptr<const engine::StopStrings>> s = engine::StopStrings::Compile(stop);
  if (!s.ok()) return Status::InvalidArgument("--stop: " + s.status().message());
  if (!grammar_file.empty()) {
    std::string text;
    GANNET_ASSIGN_OR_RETURN(text, ReadTextFile(grammar_file, "--grammar-file", kMaxGrammarFile));
    Result<std::shared_ptr<const grammar::Grammar>> g = grammar::Grammar::Compile(text);
    if (!g.ok()) return Status::InvalidArgument("--grammar-file: " + g.status().message());
    grammar = std::move(g).value();
  }
  if (!json_schema_file.empty()) {
    if (grammar != nullptr) {
      return Status::InvalidArgument("--json-schema and --grammar-file cannot be used together");
    }
    GANNET_ASSIGN_OR_RETURN(grammar, CompileSchemaFile(json_schema_file));
  }
  return Status::Ok();
}

}  // namespace gannet::cli
