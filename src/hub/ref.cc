#include "hub/ref.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>

namespace gannet::hub {
namespace {

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

Status CheckName(std::string_view what, std::string_view s, std::string_view text) {
  if (s.empty()) {
    return Status::InvalidArgument("'" + std::string(text) + "': empty " + std::string(what) +
                                   " (expected owner/repo[:QUANT] or owner/repo/FILE.gguf)");
  }
  if (s.size() > 200 || s.front() == '.' || !std::all_of(s.begin(), s.end(), IsNameChar)) {
    return Status::InvalidArgument("'" + std::string(text) + "': bad " + std::string(what) + " '" +
                                   std::string(s) +
                                   "' (letters, digits, '.', '_' and '-', not starting with '.')");
  }
  return Status::Ok();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool EndsWithGguf(std::string_view s) {
  return s.size() > 5 && Lower(s.substr(s.size() - 5)) == ".gguf";
}

// The tokens of a path's quantization-bearing part: the name without ".gguf" and split suffix,
// and the folder names, split at '-', '.' and '/'.
std::vector<std::string> Tokens(std::string_view path) {
  std::string p(path);
  if (std::optional<SplitName> s = ParseSplitName(path)) {
    p = s->stem;
  } else if (EndsWithGguf(p)) {
    p.resize(p.size() - 5);
  }
  std::vector<std::string> out;
  std::string cur;
  for (char c : p) {
    if (c == '-' || c == '.' || c == '/') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool LooksLikeQuant(std::string_view upper) {
  if (upper == "F16" || upper == "F32" || upper == "BF16") return true;
  size_t i = 0;
  if (upper.substr(0, 2) == "IQ") {
    i = 2;
  } else if (!upper.empty() && upper[0] == 'Q') {
    i = 1;
  } else {
    return false;
  }
  if (i >= upper.size() || !std::isdigit(static_cast<unsigned char>(upper[i]))) return false;
  for (; i < upper.size(); ++i) {
    if (!std::isalnum(static_cast<unsigned char>(upper[i])) && upper[i] != '_') return false;
  }
  return true;
}

// A model: one file or one split set, keyed by its first file's path.
struct Group {
  std::string key;
  std::vector<HubFile> files;
  int count = 1;  // parts the set should have
};

std::vector<Group> GroupModels(const std::vector<HubFile>& files) {
  std::map<std::string, Group> groups;
  for (const HubFile& f : files) {
    std::optional<SplitName> s = ParseSplitName(f.path);
    std::string key = s ? s->stem + "-of-" + std::to_string(s->count) : f.path;
    Group& g = groups[key];
    g.count = s ? s->count : 1;
    g.files.push_back(f);
  }
  std::vector<Group> out;
  for (auto& [key, g] : groups) {
    std::sort(g.files.begin(), g.files.end(),
              [](const HubFile& a, const HubFile& b) { return a.path < b.path; });
    g.key = g.files.front().path;
    out.push_back(std::move(g));
  }
  return out;
}

std::string ListGroups(const std::vector<Group>& groups) {
  std::string list;
  for (const Group& g : groups) {
    list += (list.empty() ? "" : ", ") + g.key;
    if (g.count > 1) list += " (" + std::to_string(g.count) + " parts)";
  }
  return list;
}

Result<std::vector<HubFile>> Complete(const Group& g) {
  if (static_cast<int>(g.files.size()) != g.count) {
    return Status::Corrupt("split model '" + g.key + "' should have " + std::to_string(g.count) +
                           " parts but the repository lists " + std::to_string(g.files.size()));
  }
  for (int i = 0; i < g.count; ++i) {
    std::optional<SplitName> s = ParseSplitName(g.files[i].path);
    if (g.count > 1 && (!s || s->index != i + 1)) {
      return Status::Corrupt("split model '" + g.key + "' lacks part " + std::to_string(i + 1));
    }
  }
  return g.files;
}

}  // namespace

Status CheckRepoPath(std::string_view path) {
  const std::string bad = "bad file path '" + std::string(path) + "': ";
  if (path.empty() || path.size() > 1024) return Status::InvalidArgument(bad + "empty or too long");
  std::string_view f = path;
  while (true) {
    const size_t slash = f.find('/');
    std::string_view c = f.substr(0, slash);
    if (c.empty() || c.front() == '.' || c.size() > 255) {
      return Status::InvalidArgument(bad + "a component is empty, too long or starts with '.'");
    }
    for (char ch : c) {
      const unsigned char u = static_cast<unsigned char>(ch);
      if (u < 0x20 || u == 0x7f || ch == '\\') {
        return Status::InvalidArgument(bad + "control character or backslash");
      }
    }
    if (slash == std::string_view::npos) break;
    f = f.substr(slash + 1);
  }
  return Status::Ok();
}

std::string ModelRef::ToString() const {
  if (!file.empty()) return repo_id() + "/" + file;
  return quant.empty() ? repo_id() : repo_id() + ":" + quant;
}

Result<ModelRef> ParseRef(std::string_view text) {
  ModelRef ref;
  size_t s1 = text.find('/');
  if (s1 == std::string_view::npos) {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not a model reference (expected owner/repo[:QUANT] or "
                                   "owner/repo/FILE.gguf)");
  }
  ref.owner = std::string(text.substr(0, s1));
  GANNET_RETURN_IF_ERROR(CheckName("owner", ref.owner, text));
  std::string_view rest = text.substr(s1 + 1);
  size_t s2 = rest.find('/');
  if (s2 == std::string_view::npos) {
    size_t colon = rest.find(':');
    ref.repo = std::string(rest.substr(0, colon));
    GANNET_RETURN_IF_ERROR(CheckName("repository", ref.repo, text));
    if (colon != std::string_view::npos) {
      ref.quant = std::string(rest.substr(colon + 1));
      GANNET_RETURN_IF_ERROR(CheckName("quantization tag", ref.quant, text));
    }
    return ref;
  }
  ref.repo = std::string(rest.substr(0, s2));
  GANNET_RETURN_IF_ERROR(CheckName("repository", ref.repo, text));
  ref.file = std::string(rest.substr(s2 + 1));
  GANNET_RETURN_IF_ERROR(CheckRepoPath(ref.file));
  if (!EndsWithGguf(ref.file)) {
    return Status::InvalidArgument("'" + std::string(text) + "': the file '" + ref.file +
                                   "' is not a .gguf file");
  }
  return ref;
}

Result<std::vector<HubFile>> ParseTree(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) {
    return Status::Corrupt("the hub's file list is not a JSON array");
  }
  std::vector<HubFile> out;
  for (const nlohmann::json& e : j) {
    if (!e.is_object()) continue;
    // value("type", "") would throw on a type that is not a string: a hostile list must not.
    const auto type = e.find("type");
    if (type == e.end() || !type->is_string() || type->get_ref<const std::string&>() != "file")
      continue;
    const nlohmann::json* path = e.contains("path") ? &e["path"] : nullptr;
    if (path == nullptr || !path->is_string()) {
      return Status::Corrupt("the hub's file list has an entry without a path");
    }
    HubFile f{.path = path->get<std::string>()};
    if (!EndsWithGguf(f.path)) continue;
    if (e.contains("size") && e["size"].is_number_integer()) f.size = e["size"].get<int64_t>();
    if (e.contains("lfs") && e["lfs"].is_object()) {
      const nlohmann::json& lfs = e["lfs"];
      if (lfs.contains("oid") && lfs["oid"].is_string())
        f.sha256 = Lower(lfs["oid"].get<std::string>());
      if (lfs.contains("size") && lfs["size"].is_number_integer())
        f.size = lfs["size"].get<int64_t>();
    }
    if (f.size < 0)
      return Status::Corrupt("the hub's file list gives no size for '" + f.path + "'");
    if (!f.sha256.empty() && f.sha256.size() != 64) {
      return Status::Corrupt("the hub's sha256 for '" + f.path + "' is not 64 hex digits");
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::optional<SplitName> ParseSplitName(std::string_view path) {
  // "-00001-of-00003.gguf": 20 characters.
  if (path.size() < 21 || !EndsWithGguf(path)) return std::nullopt;
  std::string_view tail = path.substr(path.size() - 20, 15);  // "-00001-of-00003"
  auto digits = [](std::string_view d) {
    return d.size() == 5 &&
           std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (tail[0] != '-' || tail.substr(6, 4) != "-of-" || !digits(tail.substr(1, 5)) ||
      !digits(tail.substr(10, 5))) {
    return std::nullopt;
  }
  SplitName s{.stem = std::string(path.substr(0, path.size() - 20)),
              .index = std::stoi(std::string(tail.substr(1, 5))),
              .count = std::stoi(std::string(tail.substr(10, 5)))};
  if (s.index < 1 || s.count < 1 || s.index > s.count) return std::nullopt;
  return s;
}

std::string QuantOf(std::string_view path) {
  std::vector<std::string> tokens = Tokens(path);
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {
    std::string upper = *it;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (LooksLikeQuant(upper)) return upper;
  }
  return "";
}

bool MatchesQuant(std::string_view path, std::string_view quant) {
  const std::string q = Lower(quant);
  for (const std::string& t : Tokens(path)) {
    if (Lower(t) == q) return true;
  }
  return false;
}

Result<std::vector<HubFile>> SelectFiles(const std::vector<HubFile>& files, const ModelRef& ref) {
  std::vector<Group> groups = GroupModels(files);
  if (groups.empty()) {
    return Status::NotFound("the repository '" + ref.repo_id() + "' has no .gguf file");
  }
  if (!ref.file.empty()) {
    for (const Group& g : groups) {
      for (const HubFile& f : g.files) {
        if (f.path == ref.file) return Complete(g);
      }
    }
    return Status::NotFound("the repository '" + ref.repo_id() + "' has no file '" + ref.file +
                            "' (it has: " + ListGroups(groups) + ")");
  }
  std::string_view quant = ref.quant;
  if (quant.empty() && groups.size() == 1) return Complete(groups[0]);
  if (quant.empty()) quant = kDefaultQuant;
  std::vector<Group> hits;
  for (const Group& g : groups) {
    if (MatchesQuant(g.key, quant)) hits.push_back(g);
  }
  if (hits.size() == 1) return Complete(hits[0]);
  const std::string pick = " (name one: " + ref.repo_id() + ":QUANT or " + ref.repo_id() + "/FILE)";
  if (hits.empty() && ref.quant.empty()) {
    return Status::InvalidArgument("the repository '" + ref.repo_id() +
                                   "' has several models and none is " +
                                   std::string(kDefaultQuant) + ": " + ListGroups(groups) + pick);
  }
  if (hits.empty()) {
    return Status::NotFound("the repository '" + ref.repo_id() + "' has no " + std::string(quant) +
                            " model (it has: " + ListGroups(groups) + ")");
  }
  return Status::InvalidArgument("'" + ref.ToString() + "' is ambiguous: " + ListGroups(hits) +
                                 " match" + pick);
}

}  // namespace gannet::hub
