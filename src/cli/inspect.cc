// gannet inspect FILE: the metadata and tensor table of a GGUF file.
#include <cstdio>

#include "cli/commands.h"
#include "formats/gguf.h"

namespace gannet::cli {

Runner AddInspectCommand(CLI::App& app) {
  struct Opts {
    std::string path;
    bool all = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("inspect", "Print a GGUF file's metadata and tensor table");
  sub->add_option("file", opts->path, "GGUF file")->required();
  sub->add_flag("-a,--all", opts->all, "Print long arrays and strings in full");
  return [opts] {
    Result<std::unique_ptr<GgufFile>> f = GgufFile::Open(opts->path);
    if (!f.ok()) return ReportError(f.status());
    std::string text = FormatGgufSummary(**f, opts->all);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  };
}

}  // namespace gannet::cli
