// Fetching a model from a Hugging Face-style hub into the ModelStore.
//
// The hub layout: {base}/api/models/{owner}/{repo}/tree/main?recursive=true lists the files (size,
// and the sha256 of large files as lfs.oid); {base}/{owner}/{repo}/resolve/main/{path} serves a
// file (usually by a redirect to a CDN). Each file is downloaded to "<final>.part", resumed when a
// part is there, checked against the hub's sha256, and renamed into place; the manifest is written
// when every file of the model is in place.
//
// Thread-safety: Pull may run in several threads on different models.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"
#include "hub/http_get.h"
#include "hub/ref.h"
#include "hub/store.h"

namespace gannet::hub {

inline constexpr std::string_view kDefaultHubUrl = "https://huggingface.co";

// What a pull reports as it goes (all optional).
struct PullObserver {
  std::function<void(const std::string& line)> note;
  // A file starts: its label, size, and the bytes already there (resumed).
  std::function<void(const std::string& label, int64_t size, int64_t have)> file_start;
  std::function<void(int64_t done, int64_t total)> file_progress;
  std::function<void(int64_t done)> file_done;
};

struct PullOptions {
  std::string hub_url = std::string(kDefaultHubUrl);  // http(s)://host[:port][/prefix]
  HttpOptions http;
  int64_t max_list_bytes = 32 << 20;  // the file list's answer
};

// InvalidArgument unless the URL is http:// or https:// with a host; returns it without a
// trailing '/'.
Result<std::string> NormalizeHubUrl(std::string_view url);

// Downloads the model `ref` names into `store` and returns it as stored. Errors name the
// repository, file and URL: NotFound (no such repository or file), Unavailable (private or gated:
// a token is needed), IoError (network; a partial file is kept for the next pull to resume),
// Corrupt (checksum or size mismatch: the partial file is deleted), ResourceExhausted (disk).
Result<StoredModel> Pull(const ModelRef& ref, const PullOptions& options, const ModelStore& store,
                         const PullObserver& observer);

}  // namespace gannet::hub
