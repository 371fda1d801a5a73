// The local model store: where `gannet pull` puts models and where `-m NAME` finds them.
//
// Layout under the root: owner/repo/<the file's path in the repository>, and beside the first
// file of each model "<file>.manifest.json" (owner, repo, quantization, and per file: path, size,
// sha256, source URL). A model is in the store once its manifest is: files are renamed into place
// first and the manifest written last (atomically), so an interrupted pull never lists.
//
// Names a user gives: owner/repo, owner/repo:QUANT, owner/repo/FILE.gguf, or a file name that only
// one stored model has. Thread-safety: a ModelStore holds only its root; concurrent processes that
// pull the same model race on the same final names (the last rename wins; both are the same bytes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "hub/ref.h"

namespace gannet::hub {

struct StoredFile {
  std::string path;  // inside the repository (and under root/owner/repo)
  int64_t size = 0;
  std::string sha256;  // empty when the hub gave none and the file is unverified
  std::string url;
};

struct StoredModel {
  std::string owner;
  std::string repo;
  std::string quant;              // QuantOf(first file), may be empty
  std::vector<StoredFile> files;  // in part order
  std::filesystem::path dir;      // root/owner/repo

  int64_t size() const;
  std::filesystem::path main_path() const { return dir / files.front().path; }
  std::filesystem::path manifest_path() const {
    return dir / (files.front().path + ".manifest.json");
  }
  // Every file is present with its size.
  bool complete() const;
};

// Where the store is, from the environment's values (passed in; the library reads no variables):
// $GANNET_MODELS, else $XDG_CACHE_HOME/gannet/models (when absolute), else
// $HOME/.cache/gannet/models.
struct StoreEnv {
  std::string gannet_models;
  std::string xdg_cache_home;
  std::string home;
};
Result<std::filesystem::path> StoreRoot(const StoreEnv& env);

class ModelStore {
 public:
  explicit ModelStore(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path RepoDir(const std::string& owner, const std::string& repo) const {
    return root_ / owner / repo;
  }

  // Writes the model's manifest (atomically: a temporary file renamed). REQUIRES: files non-empty.
  Status Save(const StoredModel& model) const;

  // Every model with a readable manifest, sorted by owner, repo and file. A manifest that does not
  // parse is skipped (it is not gannet's, or was cut short by a crash before the rename).
  Result<std::vector<StoredModel>> List() const;

  // The model a name designates. NotFound when none (or when the name is no model name);
  // InvalidArgument, listing the candidates, when several match.
  Result<StoredModel> Find(std::string_view name) const;

  // Deletes the model's files and manifest, then the folders left empty (never the root).
  Status Remove(const StoredModel& model) const;

  // Removes `dir` and its parents while they are empty, up to (never including) the root.
  void PruneEmpty(const std::filesystem::path& dir) const;

 private:
  std::filesystem::path root_;
};

// The short name `gannet list` shows: owner/repo:QUANT when that names only this model of its
// repository, else owner/repo/FILE.
std::string DisplayName(const StoredModel& model, const std::vector<StoredModel>& all);

}  // namespace gannet::hub
