// Model references and the choice of files in a hub repository.
//
//   owner/repo            the repository's only model, else its Q4_K_M
//   owner/repo:QUANT      the model whose file name carries the quantization tag QUANT
//   owner/repo/dir/f.gguf one file (every part of it when it is one part of a split model)
//
// A "model" here is one GGUF file or one split set (name-00001-of-0000N.gguf ... -0000N-of-...).
// Everything is a pure function of its arguments. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace gannet::hub {

struct ModelRef {
  std::string owner;
  std::string repo;
  std::string quant;  // empty: not given
  std::string file;   // a path inside the repository; empty: not given

  std::string repo_id() const { return owner + "/" + repo; }
  std::string ToString() const;
};

// InvalidArgument, naming the fault, for anything else than the forms above. Owner, repository
// and tag are the hub's characters ([A-Za-z0-9._-], not starting with '.'); a file path must pass
// CheckRepoPath and end in ".gguf".
Result<ModelRef> ParseRef(std::string_view text);

// OK when `path` is a relative path whose components are non-empty, do not start with '.' and
// hold no control character or backslash: nothing in it can leave the folder it is joined to.
Status CheckRepoPath(std::string_view path);

// A file the hub lists: its path in the repository, its size and its sha256 (empty when the hub
// gives none).
struct HubFile {
  std::string path;
  int64_t size = -1;
  std::string sha256;
};

// The .gguf files in the answer of {base}/api/models/{owner}/{repo}/tree/main: a JSON array of
// {"type": "file", "path", "size", "lfs": {"oid": sha256, "size"}}. Corrupt for a malformed answer.
Result<std::vector<HubFile>> ParseTree(std::string_view json);

// "dir/name-00002-of-00003.gguf" -> {stem "dir/name", index 2, count 3}; nullopt otherwise.
struct SplitName {
  std::string stem;
  int index = 0;
  int count = 0;
};
std::optional<SplitName> ParseSplitName(std::string_view path);

// The quantization tag in a file path ("Q4_K_M", "IQ3_XXS", "F16", "BF16"), upper-cased; empty
// when none. Tags are whole tokens between '-', '.', '/' and the ends.
std::string QuantOf(std::string_view path);

// True when `quant` is one of the tokens of the path (case-insensitive).
bool MatchesQuant(std::string_view path, std::string_view quant);

// The files of the model `ref` names, in part order. NotFound when nothing matches (naming what the
// repository has); InvalidArgument when the choice is ambiguous (listing the candidates);
// Corrupt when a split set misses parts.
Result<std::vector<HubFile>> SelectFiles(const std::vector<HubFile>& files, const ModelRef& ref);

// The quantization picked when a reference names none and the repository has several models.
inline constexpr std::string_view kDefaultQuant = "Q4_K_M";

}  // namespace gannet::hub
