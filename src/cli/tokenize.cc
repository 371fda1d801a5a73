// gannet tokenize -m FILE [-p TEXT]: the token ids the model's tokenizer gives TEXT.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace gannet::cli {

Runner AddTokenizeCommand(CLI::App& app) {
  struct Opts {
    std::string model;
    std::optional<std::string> prompt;
    bool no_bos = false, special = false, json = false, ids_only = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* sub =
      app.add_subcommand("tokenize", "Print the token ids of a text (from -p or standard input)");
  sub->add_option("-m,--model", opts->model, "GGUF model file (only its tokenizer is loaded)")
      ->required();
  sub->add_option("-p,--prompt", opts->prompt, "Text to tokenize (default: standard input)");
  sub->add_flag("--no-bos", opts->no_bos,
                "Do not add BOS/EOS even where the model's metadata asks for them");
  sub->add_flag("--special", opts->special,
                "Parse special-token texts such as <start_of_turn> as single tokens");
  sub->add_flag("--ids", opts->ids_only, "Print only the ids, as one list");
  sub->add_flag("--json", opts->json, "Print {\"ids\": [...]}");
  return [opts] {
    std::string text;
    if (opts->prompt) {
      text = *opts->prompt;
    } else {
      Result<std::string> in = ReadStdin();
      if (!in.ok()) return ReportError(in.status());
      text = std::move(in).value();
    }
    Result<std::unique_ptr<GgufFile>> f = GgufFile::Open(opts->model);
    if (!f.ok()) return ReportError(f.status());
    Result<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromGguf(**f);
    if (!tok.ok()) return ReportError(tok.status().WithContext("tokenizer"));
    std::vector<int32_t> ids = (*tok)->Encode(text, !opts->no_bos, opts->special);
    if (opts->json) {
      nlohmann::json j;
      j["ids"] = ids;
      std::printf("%s\n", j.dump().c_str());
    } else if (opts->ids_only) {
      std::string line = "[";
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? ", " : "") + std::to_string(ids[i]);
      std::printf("%s]\n", line.c_str());
    } else {
      for (int32_t id : ids) {
        std::string piece = (*tok)->TokenToPiece(id, true);
        std::printf("%6d -> '%s'\n", id, piece.c_str());
      }
      std::printf("%zu tokens\n", ids.size());
    }
    return 0;
  };
}

}  // namespace gannet::cli
