// HTTP(S) transfers for the hub client, on libcurl: a small text answer (the file list) and a
// resumable, checksummed file download.
//
// Every transfer follows redirects (the hub sends large files to a CDN; http and https only, at
// most 10 hops; a bearer token is never sent to another host), gives up when connecting takes
// longer than connect_timeout_s or when fewer than kMinBytesPerSecond arrive on average over
// stall_timeout_s (a server that drips a byte a second is cut off like a silent one), and never
// takes more bytes than it expects. Thread-safety: each call is independent; HttpGlobalInit() must
// have run once before any thread calls these.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "base/status.h"

namespace gannet::hub {

// The slowest a transfer may run, on average over stall_timeout_s, before it is given up.
inline constexpr long kMinBytesPerSecond = 1024;

struct HttpOptions {
  std::string token;  // sent as "Authorization: Bearer ..." when set
  int connect_timeout_s = 30;
  int stall_timeout_s = 60;
};

// Initialises libcurl once per process (idempotent).
void HttpGlobalInit();

struct HttpText {
  long status = 0;  // the final answer's HTTP status
  std::string body;
  std::string next;  // the URL of a `Link: <URL>; rel="next"` header (a paginated list)
};

// The URL of the rel="next" entry of a Link header value; empty when there is none.
std::string NextLink(std::string_view link_header);

// GET `url`; any HTTP status is a result (the caller words the error). IoError when the transfer
// fails; ResourceExhausted when the body passes max_bytes.
Result<HttpText> HttpGetText(const std::string& url, const HttpOptions& options, int64_t max_bytes);

struct DownloadSpec {
  std::string url;
  std::filesystem::path part;  // partial file, kept between attempts
  int64_t size = -1;           // bytes expected (the hub's size)
  std::string sha256;          // expected digest; empty: take the answer's X-Linked-Etag / ETag
  std::string label;           // names the file in messages
};

struct DownloadResult {
  std::string sha256;        // of the whole file
  bool verified = false;     // an expected digest was known and matched
  int64_t resumed_from = 0;  // bytes already there that the server's partial answer continued
};

// Called with (bytes of the file present, total bytes) as the transfer goes.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Downloads spec.url into spec.part, continuing a partial file with a Range request (restarting
// when the server ignores the range). On success spec.part holds exactly spec.size bytes whose
// sha256 matched (when one was known). An interrupted transfer keeps the partial file (IoError
// that says so); a digest mismatch or a server sending other than the expected bytes deletes it
// (Corrupt).
Result<DownloadResult> Download(const DownloadSpec& spec, const HttpOptions& options,
                                const ProgressFn& progress);

// "https://h/a b/c" -> "https://h/a%20b/c": percent-encodes each '/'-separated segment.
std::string EscapePath(std::string_view path);

}  // namespace gannet::hub
