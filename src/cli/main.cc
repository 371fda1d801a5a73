// gannet: run open LLMs fast on CPUs and serve them. Entry point: dispatches to subcommands.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>

#include "cli/commands.h"

namespace gannet::cli {

int ReportError(const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "gannet: error: %s\n", message.c_str());
  return 1;
}

int ReportError(const Status& status) { return ReportError(status.message()); }

engine::ModelRunnerOptions WithKernelEnv(engine::ModelRunnerOptions o) {
  if (const char* isa = std::getenv("GANNET_ISA")) o.isa = isa;
  if (const char* repack = std::getenv("GANNET_REPACK")) {
    if (std::strcmp(repack, "0") == 0) o.repack_weights = false;
  }
  return o;
}

Result<std::string> ReadStdin() {
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) text.append(buf, n);
  if (std::ferror(stdin)) return Status::IoError("cannot read standard input");
  return text;
}

Result<std::string> ReadTextFile(const std::string& path, const std::string& what,
                                 size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open " + what + " " + path);
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes) {
      return Status::InvalidArgument(what + " " + path + " is over " +
                                     std::to_string(max_bytes >> 20) + " MiB");
    }
  }
  if (in.bad()) return Status::IoError("cannot read " + what + " " + path);
  return text;
}

}  // namespace gannet::cli

int main(int argc, char** argv) {
  // A peer that goes away (a socket, a closed pipe on stdout or stderr) must be an EPIPE error
  // where it happens, never a signal that kills the whole process (and every client with it).
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"gannet: run open large language models fast on CPUs and serve them", "gannet"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gannet 0.1.0");
  std::map<CLI::App*, gannet::cli::Runner> runners;
  auto add = [&](gannet::cli::Runner (*fn)(CLI::App&)) {
    size_t before = app.get_subcommands({}).size();
    gannet::cli::Runner r = fn(app);
    auto subs = app.get_subcommands({});
    if (subs.size() > before) runners[subs.back()] = std::move(r);
  };
  add(gannet::cli::AddRunCommand);
  add(gannet::cli::AddTokenizeCommand);
  add(gannet::cli::AddInspectCommand);
  add(gannet::cli::AddDumpCommand);
  add(gannet::cli::AddBenchCommand);
  add(gannet::cli::AddQuantizeCommand);
  add(gannet::cli::AddServeCommand);
  add(gannet::cli::AddChatCommand);
  add(gannet::cli::AddPerplexityCommand);
  add(gannet::cli::AddDoctorCommand);
  add(gannet::cli::AddPullCommand);
  add(gannet::cli::AddListCommand);
  add(gannet::cli::AddRmCommand);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return gannet::cli::ReportError(std::string(e.what()) + " (see gannet --help)");
  }
  for (auto& [sub, run] : runners) {
    if (sub->parsed()) return run();
  }
  return gannet::cli::ReportError("no subcommand given (see gannet --help)");
}
