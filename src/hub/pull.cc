#include "hub/pull.h"

#include <system_error>

#include "hub/sha256.h"

namespace gannet::hub {
namespace fs = std::filesystem;
namespace {

// One page of the repository's file list; `next` gets the following page's URL (empty at the end).
Result<std::vector<HubFile>> ListPage(const ModelRef& ref, const std::string& base,
                                      const std::string& url, const PullOptions& options,
                                      std::string* next) {
  GANNET_ASSIGN_OR_RETURN(HttpText answer, HttpGetText(url, options.http, options.max_list_bytes));
  *next = answer.next;
  // The token goes with every page: a next page elsewhere than the hub is not followed.
  if (!next->empty() && next->rfind(base + "/", 0) != 0) {
    return Status::Corrupt("the hub's file list continues on another server (" + *next + ")");
  }
  const std::string code = "HTTP " + std::to_string(answer.status);
  if (answer.status == 404) {
    return Status::NotFound("the hub " + base + " has no repository '" + ref.repo_id() + "' (" +
                            code + ")");
  }
  if (answer.status == 401 || answer.status == 403) {
    return Status::Unavailable("the hub " + base + " refuses '" + ref.repo_id() + "' (" + code +
                               "): it does not exist, or it is private or gated (set HF_TOKEN "
                               "to a token that may read it)");
  }
  if (answer.status != 200) {
    return Status::IoError("the hub " + base + " answered " + code + " for " + url);
  }
  Result<std::vector<HubFile>> files = ParseTree(answer.body);
  if (!files.ok()) return files.status().WithContext(url);
  return files;
}

// The whole file list, following the hub's pagination (a Link header per page).
Result<std::vector<HubFile>> ListRepo(const ModelRef& ref, const std::string& base,
                                      const PullOptions& options) {
  constexpr int kMaxPages = 100;
  std::string url = base + "/api/models/" + ref.repo_id() + "/tree/main?recursive=true";
  std::vector<HubFile> all;
  for (int page = 0; page < kMaxPages && !url.empty(); ++page) {
    std::string next;
    GANNET_ASSIGN_OR_RETURN(std::vector<HubFile> files, ListPage(ref, base, url, options, &next));
    all.insert(all.end(), files.begin(), files.end());
    url = next;
  }
  if (!url.empty()) {
    return Status::ResourceExhausted("the hub's file list of '" + ref.repo_id() +
                                     "' has more than " + std::to_string(kMaxPages) + " pages");
  }
  return all;
}

// True when `path` already holds the file (right size and digest): a repeated pull is a no-op.
bool AlreadyThere(const fs::path& path, const HubFile& f) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || static_cast<int64_t>(fs::file_size(path, ec)) != f.size) {
    return false;
  }
  if (f.sha256.empty()) return true;
  Sha256 sha;
  return HashFile(path, -1, sha).ok() && sha.HexDigest() == f.sha256;
}

Status CheckSpace(const fs::path& dir, const std::vector<HubFile>& files) {
  int64_t need = 0;
  for (const HubFile& f : files) {
    std::error_code ec;
    const fs::path part = dir / (f.path + ".part");
    int64_t have = fs::exists(part, ec) ? static_cast<int64_t>(fs::file_size(part, ec)) : 0;
    if (!fs::exists(dir / f.path, ec)) need += std::max<int64_t>(0, f.size - have);
  }
  std::error_code ec;
  fs::space_info s = fs::space(dir, ec);
  if (!ec && static_cast<int64_t>(s.available) < need) {
    return Status::ResourceExhausted("the model needs " + std::to_string(need) +
                                     " more bytes and " + dir.string() + " has " +
                                     std::to_string(s.available) + " free");
  }
  return Status::Ok();
}

Result<StoredFile> FetchFile(const ModelRef& ref, const HubFile& f, const std::string& base,
                             const fs::path& dir, const PullOptions& options,
                             const PullObserver& observer) {
  const fs::path final_path = dir / f.path;
  const std::string url = base + "/" + ref.repo_id() + "/resolve/main/" + EscapePath(f.path);
  StoredFile out{.path = f.path, .size = f.size, .sha256 = f.sha256, .url = url};
  if (AlreadyThere(final_path, f)) {
    if (observer.note) observer.note(f.path + ": already in the store");
    return out;
  }
  std::error_code ec;
  fs::create_directories(final_path.parent_path(), ec);
  if (ec) {
    return Status::IoError("cannot create '" + final_path.parent_path().string() +
                           "': " + ec.message());
  }
  DownloadSpec spec{.url = url,
                    .part = final_path.string() + ".part",
                    .size = f.size,
                    .sha256 = f.sha256,
                    .label = f.path};
  const int64_t have =
      fs::exists(spec.part, ec) ? static_cast<int64_t>(fs::file_size(spec.part, ec)) : 0;
  if (observer.file_start) observer.file_start(f.path, f.size, have);
  ProgressFn progress = observer.file_progress;
  GANNET_ASSIGN_OR_RETURN(DownloadResult r, Download(spec, options.http, progress));
  if (observer.file_done) observer.file_done(f.size);
  if (!r.verified && observer.note) {
    observer.note("warning: the hub gives no sha256 for " + f.path +
                  "; stored without verification (sha256 " + r.sha256 + ")");
  }
  if (r.resumed_from > 0 && observer.note) {
    observer.note(f.path + ": resumed from byte " + std::to_string(r.resumed_from));
  }
  fs::rename(spec.part, final_path, ec);
  if (ec) return Status::IoError("cannot rename '" + spec.part.string() + "': " + ec.message());
  out.sha256 = r.sha256;
  return out;
}

}  // namespace

Result<std::string> NormalizeHubUrl(std::string_view url) {
  std::string u(url);
  while (!u.empty() && u.back() == '/') u.pop_back();
  const size_t scheme = u.find("://");
  const std::string s = scheme == std::string::npos ? "" : u.substr(0, scheme);
  if ((s != "http" && s != "https") || u.size() <= scheme + 3) {
    return Status::InvalidArgument("hub URL '" + std::string(url) +
                                   "' must start with http:// or https:// and name a host");
  }
  return u;
}

Result<StoredModel> Pull(const ModelRef& ref, const PullOptions& options, const ModelStore& store,
                         const PullObserver& observer) {
  GANNET_ASSIGN_OR_RETURN(std::string base, NormalizeHubUrl(options.hub_url));
  if (observer.note) observer.note("listing " + ref.repo_id() + " on " + base);
  GANNET_ASSIGN_OR_RETURN(std::vector<HubFile> listed, ListRepo(ref, base, options));
  GANNET_ASSIGN_OR_RETURN(std::vector<HubFile> files, SelectFiles(listed, ref));
  for (const HubFile& f : files) {
    Status s = CheckRepoPath(f.path);
    if (!s.ok()) return Status::Corrupt("the hub lists an unsafe file path: " + s.message());
  }
  StoredModel model{.owner = ref.owner,
                    .repo = ref.repo,
                    .quant = QuantOf(files.front().path),
                    .dir = store.RepoDir(ref.owner, ref.repo)};
  std::error_code ec;
  fs::create_directories(model.dir, ec);
  if (ec) return Status::IoError("cannot create '" + model.dir.string() + "': " + ec.message());
  Status s = CheckSpace(model.dir, files);
  for (size_t i = 0; i < files.size() && s.ok(); ++i) {
    Result<StoredFile> sf = FetchFile(ref, files[i], base, model.dir, options, observer);
    if (sf.ok()) model.files.push_back(std::move(sf).value());
    s = sf.status();
  }
  if (s.ok()) s = store.Save(model);
  if (!s.ok()) {  // folders made for nothing go again (a kept partial file keeps its own)
    for (const HubFile& f : files) store.PruneEmpty((model.dir / f.path).parent_path());
    return s;
  }
  return model;
}

}  // namespace gannet::hub
