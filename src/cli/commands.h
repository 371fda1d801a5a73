// The `gannet` subcommands. Each registers its options on a CLI11 subcommand and returns the
// process exit code when run. Errors are printed as one line: "gannet: error: <message>".
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "grammar/grammar.h"
#include "sampling/sampling_params.h"

namespace gannet::cli {

// Registers the subcommand and returns a function that runs it after parsing.
using Runner = std::function<int()>;
Runner AddRunCommand(CLI::App& app);
Runner AddTokenizeCommand(CLI::App& app);
Runner AddInspectCommand(CLI::App& app);
Runner AddDumpCommand(CLI::App& app);
Runner AddBenchCommand(CLI::App& app);
Runner AddQuantizeCommand(CLI::App& app);
Runner AddServeCommand(CLI::App& app);
Runner AddChatCommand(CLI::App& app);
Runner AddPerplexityCommand(CLI::App& app);
Runner AddDoctorCommand(CLI::App& app);
Runner AddPullCommand(CLI::App& app);
Runner AddListCommand(CLI::App& app);
Runner AddRmCommand(CLI::App& app);

// The -m of the commands that load a model: an existing path stays as it is; otherwise a name in
// the model store (owner/repo[:QUANT], owner/repo/FILE.gguf, or a file name only one stored model
// has) is replaced by its file's path. An ambiguous name, or owner/repo[:QUANT] that is not in the
// store, is an error that says so; any other name is left for the loader to report.
Status ResolveModelFlag(std::string* model);

// The sampling and stop-string options of `run` and `chat` (llama.cpp's names).
struct GenerationFlags {
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  std::string grammar_file;                         // --grammar-file: GBNF text
  std::string json_schema_file;                     // --json-schema: a JSON Schema
  std::shared_ptr<const grammar::Grammar> grammar;  // compiled by Check()
  // Puts the seed into `sampling`, then checks the sampling values and the stop strings and
  // compiles the grammar file or the JSON Schema.
  Status Check();
};
void AddGenerationFlags(CLI::App* sub, GenerationFlags* flags);

// --spec, --spec-max-tokens, --spec-self-tokens and --spec-self-layers (run, chat, serve, bench).
struct SpecFlags {
  std::string method = "none";  // run, chat and serve: "ngram"
  int32_t max_tokens = 8;
  int32_t self_tokens = 32768;  // self: the restricted head's tokens
  int32_t self_layers = 0;      // self: layers the draft runs (0: all)
  // draft:FILE: the draft model, loaded by the first Apply and shared by copies of these flags
  // (it must outlive every Engine made with the options Apply set).
  std::shared_ptr<engine::ModelRunner> draft;
  // InvalidArgument for an unknown method or a count out of range (nothing is loaded).
  Status Check() const;
  // Check(), then sets the engine's speculative decoding options for `target`; draft:FILE loads
  // the draft model (an unreadable file or a vocabulary unlike the target's is an error).
  Status Apply(const engine::ModelRunner& target, engine::EngineOptions* options);
  // The method as reported (/props, bench): draft:FILE shows the file's name without folders;
  // self shows its head's tokens and its layers when not all, e.g. "self:32768" or "self:8192:12".
  std::string Name() const;
};
void AddSpecFlags(CLI::App* sub, SpecFlags* flags);
// Engine settings from the environment (run, chat, serve): GANNET_GRAMMAR_OVERLAP=0 computes
// grammar masks after the forward pass rather than during it (EngineOptions::grammar_overlap; the
// output is the same, for timing one against the other).
void ApplyEngineEnvironment(engine::EngineOptions* options);

// Prints "gannet: error: <status message>" to stderr and returns 1.
int ReportError(const Status& status);
// `o` with the kernel options the environment asks for, so that one build can be timed several
// ways (bench/ab_gannet.py --a-env / --b-env): GANNET_ISA names the CPU kernel target
// (ModelRunnerOptions::isa) and GANNET_REPACK=0 keeps the weights' file layout
// (ModelRunnerOptions::repack_weights).
engine::ModelRunnerOptions WithKernelEnv(engine::ModelRunnerOptions o);
int ReportError(const std::string& message);

// Reads all of standard input (for prompts given on stdin).
Result<std::string> ReadStdin();
// Reads a whole file given on the command line; `what` names it in errors ("cannot open <what>
// <path>", NotFound); a file over max_bytes is InvalidArgument (read up to there only).
Result<std::string> ReadTextFile(const std::string& path, const std::string& what,
                                 size_t max_bytes);

}  // namespace gannet::cli
