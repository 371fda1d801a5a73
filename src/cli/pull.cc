// gannet pull REF, gannet list, gannet rm NAME: the local model store (hub/), and the resolution
// of `-m NAME` for the commands that load a model. The environment is read here, never in hub/.
#include "hub/pull.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "formats/gguf.h"
#include "hub/progress.h"
#include "hub/store.h"

namespace gannet::cli {
namespace fs = std::filesystem;
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

Result<hub::ModelStore> OpenStore() {
  GANNET_ASSIGN_OR_RETURN(fs::path root, hub::StoreRoot({.gannet_models = Env("GANNET_MODELS"),
                                                         .xdg_cache_home = Env("XDG_CACHE_HOME"),
                                                         .home = Env("HOME")}));
  return hub::ModelStore(root);
}

struct PullOpts {
  std::string ref;
  std::string hub_url;
  int timeout_s = 60;
  bool quiet = false;
};

// The pull's observer: notes and a progress bar on stderr (redrawn on a terminal).
hub::PullObserver MakeObserver(const PullOpts& o, std::shared_ptr<hub::ProgressBar>& bar) {
  hub::PullObserver obs;
  if (o.quiet) return obs;
  const bool tty = isatty(fileno(stderr)) != 0;
  obs.note = [](const std::string& line) { std::fprintf(stderr, "gannet: %s\n", line.c_str()); };
  obs.file_start = [&bar, tty](const std::string& label, int64_t size, int64_t have) {
    if (have > 0) {
      std::fprintf(stderr, "gannet: %s: resuming at %s of %s\n", label.c_str(),
                   hub::FormatBytes(have).c_str(), hub::FormatBytes(size).c_str());
    }
    bar = std::make_shared<hub::ProgressBar>(stderr, tty, label, size, have);
  };
  obs.file_progress = [&bar](int64_t done, int64_t) {
    if (bar) bar->Update(done);
  };
  obs.file_done = [&bar](int64_t done) {
    if (bar) bar->Finish(done);
    bar.reset();
  };
  return obs;
}

// A pulled model must open as GGUF (its first part for a split model): a hub that serves an
// HTML page or a truncated file under a .gguf name is caught here, not at the first run.
Status CheckPulled(const hub::StoredModel& m, const hub::ModelStore& store) {
  Result<std::unique_ptr<GgufFile>> f = GgufFile::Open(m.main_path().string());
  if (f.ok()) return Status::Ok();
  (void)store.Remove(m);
  return Status::Corrupt("the pulled file is not a usable GGUF file (" + f.status().message() +
                         "); it was removed from the store");
}

int RunPull(const PullOpts& o) {
  Result<hub::ModelRef> ref = hub::ParseRef(o.ref);
  if (!ref.ok()) return ReportError(ref.status());
  if (o.timeout_s < 1) return ReportError("--timeout must be at least 1 second");
  Result<hub::ModelStore> store = OpenStore();
  if (!store.ok()) return ReportError(store.status());
  hub::PullOptions po;
  po.hub_url = !o.hub_url.empty()               ? o.hub_url
               : !Env("GANNET_HUB_URL").empty() ? Env("GANNET_HUB_URL")
                                                : std::string(hub::kDefaultHubUrl);
  po.http = {.token = Env("HF_TOKEN"),
             .connect_timeout_s = std::min(o.timeout_s, 30),
             .stall_timeout_s = o.timeout_s};
  std::shared_ptr<hub::ProgressBar> bar;
  hub::PullObserver obs = MakeObserver(o, bar);
  Result<hub::StoredModel> m = hub::Pull(*ref, po, *store, obs);
  if (bar) bar->EndLine();  // a failure in the middle of a file
  if (!m.ok()) return ReportError(m.status());
  if (Status s = CheckPulled(*m, *store); !s.ok()) return ReportError(s);
  Result<std::vector<hub::StoredModel>> all = store->List();
  const std::string name = all.ok() ? hub::DisplayName(*m, *all) : m->owner + "/" + m->repo;
  std::printf("pulled %s (%s, %zu file%s) into %s\n", name.c_str(),
              hub::FormatBytes(m->size()).c_str(), m->files.size(), m->files.size() > 1 ? "s" : "",
              m->main_path().string().c_str());
  if (m->files.size() > 1) {
    std::printf(
        "note: a split model; gannet loads single-file models only (merge the parts with "
        "llama-gguf-split --merge)\n");
  } else {
    std::printf("run it: gannet run -m %s -p \"Hello\"\n", name.c_str());
  }
  return 0;
}

int RunList(bool json) {
  Result<hub::ModelStore> store = OpenStore();
  if (!store.ok()) return ReportError(store.status());
  Result<std::vector<hub::StoredModel>> all = store->List();
  if (!all.ok()) return ReportError(all.status());
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const hub::StoredModel& m : *all) {
      out.push_back({{"name", hub::DisplayName(m, *all)},
                     {"quant", m.quant},
                     {"size", m.size()},
                     {"path", m.main_path().string()},
                     {"files", m.files.size()},
                     {"complete", m.complete()}});
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  if (all->empty()) {
    std::printf("no models in %s (gannet pull OWNER/REPO[:QUANT] fetches one)\n",
                store->root().string().c_str());
    return 0;
  }
  std::printf("%-48s %-8s %10s  %s\n", "NAME", "QUANT", "SIZE", "PATH");
  for (const hub::StoredModel& m : *all) {
    std::string path = m.main_path().string();
    if (m.files.size() > 1) path += " (+" + std::to_string(m.files.size() - 1) + " parts)";
    if (!m.complete()) path += " (incomplete: pull again)";
    std::printf("%-48s %-8s %10s  %s\n", hub::DisplayName(m, *all).c_str(),
                m.quant.empty() ? "-" : m.quant.c_str(), hub::FormatBytes(m.size()).c_str(),
                path.c_str());
  }
  return 0;
}

int RunRm(const std::string& name) {
  Result<hub::ModelStore> store = OpenStore();
  if (!store.ok()) return ReportError(store.status());
  Result<hub::StoredModel> m = store->Find(name);
  if (!m.ok()) return ReportError(m.status());
  if (Status s = store->Remove(*m); !s.ok()) return ReportError(s);
  std::printf("removed %s/%s/%s (%s)\n", m->owner.c_str(), m->repo.c_str(),
              m->files.front().path.c_str(), hub::FormatBytes(m->size()).c_str());
  return 0;
}

}  // namespace

Status ResolveModelFlag(std::string* model) {
  std::error_code ec;
  if (model->empty() || fs::exists(*model, ec)) return Status::Ok();  // a path always wins
  Result<hub::ModelStore> store = OpenStore();
  if (!store.ok()) return Status::Ok();  // no store: the loader names the missing file
  Result<hub::StoredModel> m = store->Find(*model);
  if (m.ok()) {
    if (!m->complete()) {
      return Status::NotFound("the stored model '" + *model + "' misses files (gannet pull " +
                              m->owner + "/" + m->repo + "/" + m->files.front().path +
                              " fetches them again)");
    }
    *model = m->main_path().string();
    return Status::Ok();
  }
  if (m.status().code() != StatusCode::kNotFound) return m.status();
  Result<hub::ModelRef> ref = hub::ParseRef(*model);
  if (ref.ok() && ref->file.empty()) {
    return Status::NotFound("'" + *model + "' is neither a file nor a model in the store " +
                            store->root().string() + " (gannet pull " + *model + " fetches it)");
  }
  return Status::Ok();  // a file name: the loader says it cannot open it
}

Runner AddPullCommand(CLI::App& app) {
  auto o = std::make_shared<PullOpts>();
  CLI::App* sub = app.add_subcommand(
      "pull", "Download a GGUF model from a Hugging Face-style hub into the local model store");
  sub->add_option("ref", o->ref, "owner/repo[:QUANT] or owner/repo/FILE.gguf")->required();
  sub->add_option("--hub-url", o->hub_url,
                  "Hub base URL (default: $GANNET_HUB_URL, else https://huggingface.co)");
  sub->add_option("--timeout", o->timeout_s,
                  "Give up when the server sends nothing for this many seconds")
      ->capture_default_str();
  sub->add_flag("-q,--quiet", o->quiet, "No progress output");
  return [o] { return RunPull(*o); };
}

Runner AddListCommand(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("list", "List the models in the local model store");
  sub->add_flag("--json", *json, "One JSON array");
  return [json] { return RunList(*json); };
}

Runner AddRmCommand(CLI::App& app) {
  auto name = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("rm", "Remove a model from the local model store");
  sub->add_option("name", *name, "owner/repo[:QUANT], owner/repo/FILE.gguf or a file name")
      ->required();
  return [name] { return RunRm(*name); };
}

}  // namespace gannet::cli
