#include "hub/store.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

namespace gannet::hub {
namespace fs = std::filesystem;
namespace {

bool EqualNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

constexpr std::string_view kManifestSuffix = ".manifest.json";
constexpr int64_t kMaxManifestBytes = 1 << 20;

Result<StoredModel> ReadManifest(const fs::path& root, const fs::path& manifest) {
  std::error_code ec;
  if (fs::file_size(manifest, ec) > static_cast<uintmax_t>(kMaxManifestBytes) || ec) {
    return Status::Corrupt("manifest too large or unreadable");
  }
  std::ifstream in(manifest);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("files") || !j["files"].is_array() ||
      j["files"].empty()) {
    return Status::Corrupt("not a manifest");
  }
  // json::value throws when a field has another type: a damaged manifest must not.
  const auto text = [](const nlohmann::json& o, const char* key) {
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  StoredModel m;
  m.owner = text(j, "owner");
  m.repo = text(j, "repo");
  if (m.owner.empty() || m.repo.empty()) return Status::Corrupt("manifest without a repository");
  m.dir = root / m.owner / m.repo;
  for (const nlohmann::json& f : j["files"]) {
    if (!f.is_object() || !f.contains("path") || !f["path"].is_string()) {
      return Status::Corrupt("manifest file entry without a path");
    }
    const auto size = f.find("size");
    StoredFile sf{.path = f["path"].get<std::string>(),
                  .size = size != f.end() && size->is_number_integer() ? size->get<int64_t>() : -1,
                  .sha256 = text(f, "sha256"),
                  .url = text(f, "url")};
    if (!CheckRepoPath(sf.path).ok()) return Status::Corrupt("manifest path leaves the store");
    m.files.push_back(std::move(sf));
  }
  // The manifest must sit beside its first file, or it describes some other place.
  if (m.manifest_path().lexically_normal() != manifest.lexically_normal()) {
    return Status::Corrupt("manifest in the wrong place");
  }
  m.quant = QuantOf(m.files.front().path);
  return m;
}

std::string Describe(const std::vector<StoredModel>& models) {
  std::string out;
  for (const StoredModel& m : models) {
    if (!out.empty()) out += ", ";
    out += m.owner + "/" + m.repo + "/" + m.files.front().path;
  }
  return out;
}

Result<StoredModel> PickOne(std::string_view name, std::vector<StoredModel> hits,
                            const fs::path& root) {
  if (hits.size() == 1) return std::move(hits[0]);
  if (hits.empty()) {
    return Status::NotFound("no model '" + std::string(name) + "' in the store " + root.string());
  }
  std::string message = "'";
  message += name;
  message += "' names " + std::to_string(hits.size()) + " stored models: " + Describe(hits) +
             " (name one as owner/repo/FILE)";
  return Status::InvalidArgument(message);
}

}  // namespace

int64_t StoredModel::size() const {
  int64_t n = 0;
  for (const StoredFile& f : files) n += f.size;
  return n;
}

bool StoredModel::complete() const {
  for (const StoredFile& f : files) {
    std::error_code ec;
    uintmax_t n = fs::file_size(dir / f.path, ec);
    if (ec || static_cast<int64_t>(n) != f.size) return false;
  }
  return true;
}

Result<fs::path> StoreRoot(const StoreEnv& env) {
  if (!env.gannet_models.empty()) return fs::path(env.gannet_models);
  if (!env.xdg_cache_home.empty() && fs::path(env.xdg_cache_home).is_absolute()) {
    return fs::path(env.xdg_cache_home) / "gannet" / "models";
  }
  if (!env.home.empty()) return fs::path(env.home) / ".cache" / "gannet" / "models";
  return Status::NotFound(
      "no place for the model store: set GANNET_MODELS (or XDG_CACHE_HOME, or HOME)");
}

Status ModelStore::Save(const StoredModel& model) const {
  nlohmann::json files = nlohmann::json::array();
  for (const StoredFile& f : model.files) {
    files.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}, {"url", f.url}});
  }
  nlohmann::json j = {{"owner", model.owner}, {"repo", model.repo}, {"files", files}};
  const fs::path dest = model.manifest_path();
  const fs::path tmp = dest.string() + ".tmp";
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  if (ec)
    return Status::IoError("cannot create '" + dest.parent_path().string() + "': " + ec.message());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) return Status::IoError("cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, dest, ec);
  if (ec) return Status::IoError("cannot rename '" + tmp.string() + "': " + ec.message());
  return Status::Ok();
}

Result<std::vector<StoredModel>> ModelStore::List() const {
  std::vector<StoredModel> out;
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) return out;
  fs::recursive_directory_iterator it(root_, fs::directory_options::skip_permission_denied, ec);
  if (ec) return Status::IoError("cannot read the store " + root_.string() + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return Status::IoError("cannot read the store " + root_.string() + ": " + ec.message());
    if (it.depth() > 16) {
      it.disable_recursion_pending();
      continue;
    }
    const std::string name = it->path().filename().string();
    if (!it->is_regular_file(ec) || name.size() <= kManifestSuffix.size() ||
        name.substr(name.size() - kManifestSuffix.size()) != kManifestSuffix) {
      continue;
    }
    Result<StoredModel> m = ReadManifest(root_, it->path());
    if (m.ok()) out.push_back(std::move(m).value());
  }
  std::sort(out.begin(), out.end(), [](const StoredModel& a, const StoredModel& b) {
    return std::tie(a.owner, a.repo, a.files.front().path) <
           std::tie(b.owner, b.repo, b.files.front().path);
  });
  return out;
}

Result<StoredModel> ModelStore::Find(std::string_view name) const {
  GANNET_ASSIGN_OR_RETURN(std::vector<StoredModel> all, List());
  std::vector<StoredModel> hits;
  if (name.find('/') == std::string_view::npos) {
    for (const StoredModel& m : all) {
      for (const StoredFile& f : m.files) {
        if (fs::path(f.path).filename() == name) {
          hits.push_back(m);
          break;
        }
      }
    }
    return PickOne(name, std::move(hits), root_);
  }
  Result<ModelRef> parsed = ParseRef(name);
  if (!parsed.ok()) {
    return Status::NotFound("'" + std::string(name) + "' is not a model name (" +
                            parsed.status().message() + ")");
  }
  const ModelRef& ref = *parsed;
  for (const StoredModel& m : all) {
    if (!EqualNoCase(m.owner, ref.owner) || !EqualNoCase(m.repo, ref.repo)) continue;
    if (!ref.file.empty()) {
      for (const StoredFile& f : m.files) {
        if (f.path == ref.file) hits.push_back(m);
      }
    } else if (ref.quant.empty() || MatchesQuant(m.files.front().path, ref.quant)) {
      hits.push_back(m);
    }
  }
  if (hits.size() > 1 && ref.quant.empty() && ref.file.empty()) {
    std::vector<StoredModel> dflt;
    for (const StoredModel& m : hits) {
      if (MatchesQuant(m.files.front().path, kDefaultQuant)) dflt.push_back(m);
    }
    if (dflt.size() == 1) return std::move(dflt[0]);
  }
  return PickOne(name, std::move(hits), root_);
}

Status ModelStore::Remove(const StoredModel& model) const {
  std::error_code ec;
  std::vector<fs::path> doomed = {model.manifest_path()};
  for (const StoredFile& f : model.files) {
    doomed.push_back(model.dir / f.path);
    doomed.push_back(model.dir / (f.path + ".part"));
  }
  for (const fs::path& p : doomed) {
    fs::remove(p, ec);
    if (ec) return Status::IoError("cannot remove '" + p.string() + "': " + ec.message());
  }
  for (const StoredFile& f : model.files) PruneEmpty((model.dir / f.path).parent_path());
  return Status::Ok();
}

void ModelStore::PruneEmpty(const fs::path& dir) const {
  const fs::path root = root_.lexically_normal();
  std::error_code ec;
  for (fs::path d = dir.lexically_normal(); d != root && d.string().size() > root.string().size();
       d = d.parent_path()) {
    if (!fs::is_directory(d, ec) || !fs::is_empty(d, ec)) break;
    fs::remove(d, ec);
  }
}

std::string DisplayName(const StoredModel& model, const std::vector<StoredModel>& all) {
  const std::string repo_id = model.owner + "/" + model.repo;
  if (!model.quant.empty()) {
    int same = 0;
    for (const StoredModel& m : all) {
      if (m.owner == model.owner && m.repo == model.repo &&
          MatchesQuant(m.files.front().path, model.quant)) {
        ++same;
      }
    }
    if (same == 1) return repo_id + ":" + model.quant;
  }
  return repo_id + "/" + model.files.front().path;
}

}  // namespace gannet::hub
