#include "hub/http_get.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <system_error>

#include "hub/sha256.h"

namespace gannet::hub {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kMaxHeaderBytes = 1 << 20;
constexpr size_t kMaxErrorBody = 1024;

// State shared with libcurl's callbacks for one transfer.
struct Transfer {
  // Where the body goes: a file (with its digest) or a string.
  FILE* out = nullptr;
  Sha256* sha = nullptr;
  std::string* text = nullptr;
  int64_t text_max = 0;
  int64_t offset = 0;  // bytes of the file before this answer's body
  int64_t limit = -1;  // the file's expected size
  bool range_asked = false;
  std::string label;
  // The latest answer's headers (X-Linked-Etag is kept across redirects: the hub sends it on the
  // redirect, not on the CDN's answer).
  long status = 0;
  std::string content_range, etag, linked_etag, link;
  int64_t content_length = -1;
  int64_t header_bytes = 0;
  // Progress.
  bool body_started = false;
  bool restarted = false;
  int64_t received = 0;
  int64_t stall_s = 60;
  int64_t last_seen = -1;
  Clock::time_point last_progress = Clock::now();
  const ProgressFn* progress = nullptr;
  std::string error_body;
  Status error;
};

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

size_t OnHeader(char* p, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  const size_t len = size * n;
  t->header_bytes += static_cast<int64_t>(len);
  if (t->header_bytes > kMaxHeaderBytes) {
    t->error = Status::Corrupt("the server sent more than 1 MiB of headers");
    return 0;
  }
  std::string_view line(p, len);
  if (line.substr(0, 5) == "HTTP/") {
    size_t sp = line.find(' ');
    t->status =
        sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
    t->content_range.clear();
    t->etag.clear();
    t->link.clear();
    t->content_length = -1;
    return len;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  std::string name = Trim(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string value = Trim(line.substr(colon + 1));
  if (name == "content-range") t->content_range = value;
  if (name == "etag") t->etag = value;
  if (name == "x-linked-etag") t->linked_etag = value;
  if (name == "content-length") t->content_length = std::atoll(value.c_str());
  if (name == "link") t->link = value;
  return len;
}

// The first body byte of the final answer: decide whether it continues the file, replaces it,
// or is an error page.
Status StartBody(Transfer& t) {
  const std::string what = "'" + t.label + "'";
  if (t.status == 206) {
    if (!t.range_asked) return Status::Corrupt("the server sent part of " + what + " unasked");
    const std::string want = "bytes " + std::to_string(t.offset) + "-";
    if (t.content_range.rfind(want, 0) != 0) {
      return Status::Corrupt("asked for " + what + " from byte " + std::to_string(t.offset) +
                             ", the server sent range '" + t.content_range + "'");
    }
  } else if (t.status == 200) {
    if (t.offset > 0) {  // the server ignored the range: start over
      if (std::fflush(t.out) != 0 || ftruncate(fileno(t.out), 0) != 0 ||
          std::fseek(t.out, 0, SEEK_SET) != 0) {
        return Status::IoError("cannot restart the partial file of " + what);
      }
      *t.sha = Sha256();
      t.offset = 0;
      t.restarted = true;
    }
  } else {
    return Status::Ok();  // an error page: collected for the message
  }
  if (t.limit >= 0 && t.content_length >= 0 && t.offset + t.content_length != t.limit) {
    return Status::Corrupt("the server announces " + std::to_string(t.offset + t.content_length) +
                           " bytes for " + what + ", the hub lists " + std::to_string(t.limit));
  }
  return Status::Ok();
}

size_t OnFileBody(char* p, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  const size_t len = size * n;
  if (!t->body_started) {
    t->body_started = true;
    t->error = StartBody(*t);
    if (!t->error.ok()) return 0;
  }
  if (t->status != 200 && t->status != 206) {
    t->error_body.append(
        p, std::min(len, kMaxErrorBody - std::min(kMaxErrorBody, t->error_body.size())));
    return len;
  }
  if (t->limit >= 0 && t->offset + t->received + static_cast<int64_t>(len) > t->limit) {
    t->error = Status::Corrupt("the server sent more than the " + std::to_string(t->limit) +
                               " bytes the hub lists for '" + t->label + "'");
    return 0;
  }
  if (std::fwrite(p, 1, len, t->out) != len) {
    t->error = Status::IoError("cannot write the download of '" + t->label + "' (disk full?)");
    return 0;
  }
  t->sha->Update(p, len);
  t->received += static_cast<int64_t>(len);
  return len;
}

size_t OnTextBody(char* p, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  const size_t len = size * n;
  if (static_cast<int64_t>(t->text->size() + len) > t->text_max) {
    t->error = Status::ResourceExhausted("the answer is larger than " +
                                         std::to_string(t->text_max) + " bytes");
    return 0;
  }
  t->text->append(p, len);
  return len;
}

// Called by libcurl about once a second even when nothing arrives: the stall timer lives here so
// a server that accepts and then stays silent (before or after its headers) is given up on.
int OnProgress(void* ud, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(ud);
  const Clock::time_point now = Clock::now();
  const int64_t seen = static_cast<int64_t>(dlnow) + t->header_bytes;
  if (seen != t->last_seen) {
    t->last_seen = seen;
    t->last_progress = now;
  } else if (now - t->last_progress > std::chrono::seconds(t->stall_s)) {
    t->error = Status::IoError("no data for " + std::to_string(t->stall_s) + " s");
    return 1;
  }
  if (t->progress != nullptr && *t->progress && t->out != nullptr && t->status / 100 == 2) {
    (*t->progress)(t->offset + t->received, t->limit);
  }
  return 0;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* s) const { curl_slist_free_all(s); }
};

std::unique_ptr<CURL, CurlDeleter> NewHandle(const std::string& url, const HttpOptions& o,
                                             Transfer& t,
                                             std::unique_ptr<curl_slist, SlistDeleter>& headers) {
  std::unique_ptr<CURL, CurlDeleter> c(curl_easy_init());
  if (!c) return c;
  CURL* h = c.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, static_cast<long>(o.connect_timeout_s));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, kMinBytesPerSecond);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o.stall_timeout_s));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "gannet/0.1");
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
  t.stall_s = o.stall_timeout_s;
  // A custom Authorization header goes to the first host only: libcurl drops it on a redirect
  // to another host (CURLOPT_UNRESTRICTED_AUTH stays off).
  if (!o.token.empty()) {
    headers.reset(
        curl_slist_append(headers.release(), ("Authorization: Bearer " + o.token).c_str()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  }
  return c;
}

Status TransferError(CURLcode rc, const Transfer& t, const std::string& url) {
  std::string why = t.error.ok() ? curl_easy_strerror(rc) : t.error.message();
  if (rc == CURLE_OPERATION_TIMEDOUT && t.error.ok()) {
    why = "no answer within the timeout (" + std::to_string(t.stall_s) + " s), or under " +
          std::to_string(kMinBytesPerSecond) + " bytes/s for that long";
  }
  return Status::IoError(url + ": " + why);
}

std::string Digest(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  for (char& c : etag) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return IsSha256Hex(etag) ? etag : "";
}

std::string FirstLine(const std::string& body) {
  std::string line = Trim(body.substr(0, body.find('\n')));
  return line.empty() ? "" : ": " + line.substr(0, 200);
}

}  // namespace

void HttpGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<HttpText> HttpGetText(const std::string& url, const HttpOptions& options,
                             int64_t max_bytes) {
  HttpGlobalInit();
  HttpText out;
  Transfer t{.text = &out.body, .text_max = max_bytes, .label = url};
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  std::unique_ptr<CURL, CurlDeleter> c = NewHandle(url, options, t, headers);
  if (!c) return Status::Internal("cannot create an HTTP transfer");
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, OnTextBody);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &t);
  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    if (t.error.code() == StatusCode::kResourceExhausted) return t.error.WithContext(url);
    return TransferError(rc, t, url);
  }
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &out.status);
  out.next = NextLink(t.link);
  return out;
}

std::string NextLink(std::string_view link_header) {
  // <url1>; rel="next", <url2>; rel="last"
  size_t pos = 0;
  while (pos < link_header.size()) {
    const size_t open = link_header.find('<', pos);
    const size_t close = link_header.find('>', open);
    if (open == std::string_view::npos || close == std::string_view::npos) break;
    const size_t end = std::min(link_header.find('<', close), link_header.size());
    const std::string_view params = link_header.substr(close + 1, end - close - 1);
    if (params.find("rel=\"next\"") != std::string_view::npos ||
        params.find("rel=next") != std::string_view::npos) {
      return std::string(link_header.substr(open + 1, close - open - 1));
    }
    pos = end;
  }
  return "";
}

namespace {

struct Attempt {
  Status status;  // of the transfer itself
  bool retry_from_zero = false;
  Transfer t;
};

// One request for the rest of spec.part. REQUIRES: the part holds `have` bytes hashed into sha.
void RunAttempt(const DownloadSpec& spec, const HttpOptions& options, const ProgressFn& progress,
                int64_t have, Sha256& sha, Attempt& a) {
  Transfer& t = a.t;
  std::unique_ptr<FILE, int (*)(FILE*)> out(std::fopen(spec.part.c_str(), have > 0 ? "r+b" : "wb"),
                                            &std::fclose);
  if (!out || (have > 0 && std::fseek(out.get(), have, SEEK_SET) != 0)) {
    a.status = Status::IoError("cannot write '" + spec.part.string() + "'");
    return;
  }
  t.out = out.get();
  t.sha = &sha;
  t.offset = have;
  t.limit = spec.size;
  t.range_asked = have > 0;
  t.label = spec.label;
  t.progress = &progress;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  std::unique_ptr<CURL, CurlDeleter> c = NewHandle(spec.url, options, t, headers);
  if (!c) {
    a.status = Status::Internal("cannot create an HTTP transfer");
    return;
  }
  const std::string range = std::to_string(have) + "-";
  if (have > 0) curl_easy_setopt(c.get(), CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, OnFileBody);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &t);
  if (spec.size >= 0) curl_easy_setopt(c.get(), CURLOPT_MAXFILESIZE_LARGE, curl_off_t{spec.size});
  CURLcode rc = curl_easy_perform(c.get());
  const bool flushed = std::fflush(out.get()) == 0 && fsync(fileno(out.get())) == 0;
  if (rc == CURLE_FILESIZE_EXCEEDED) {
    a.status = Status::Corrupt("the server announces more than the " + std::to_string(spec.size) +
                               " bytes the hub lists for '" + spec.label + "'");
    return;
  }
  if (rc != CURLE_OK) {
    const bool ours = !t.error.ok() && t.error.code() != StatusCode::kIoError;
    a.status = ours ? t.error : TransferError(rc, t, spec.url);
    return;
  }
  if (!flushed) a.status = Status::IoError("cannot write '" + spec.part.string() + "'");
  if (t.status == 416 && have > 0) a.retry_from_zero = true;
  if (t.status == 200 && have > 0 && !t.body_started) {  // an empty whole-file answer
    a.status = Status::Corrupt("the server sent no bytes of '" + spec.label + "'");
  }
}

Status HttpStatusError(const Transfer& t, const DownloadSpec& spec) {
  const std::string code = "HTTP " + std::to_string(t.status);
  if (t.status == 404) {
    return Status::NotFound("the hub has no file '" + spec.label + "' (" + code + " from " +
                            spec.url + ")");
  }
  if (t.status == 401 || t.status == 403) {
    return Status::Unavailable("the hub refuses '" + spec.label + "' (" + code +
                               "): the repository is private or gated; set HF_TOKEN to a token "
                               "that may read it");
  }
  return Status::IoError(code + " from " + spec.url + FirstLine(t.error_body));
}

// An exclusive lock on the partial file for the whole download: a second pull of the same file
// (another terminal) fails at once instead of writing into the same bytes.
class PartLock {
 public:
  ~PartLock() {
    if (fd_ >= 0) close(fd_);
  }
  Status Acquire(const DownloadSpec& spec) {
    fd_ = open(spec.part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::IoError("cannot create '" + spec.part.string() + "'");
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      return Status::Unavailable("another gannet pull is downloading '" + spec.label + "' (" +
                                 spec.part.string() + ")");
    }
    return Status::Ok();
  }

 private:
  int fd_ = -1;
};

}  // namespace

Result<DownloadResult> Download(const DownloadSpec& spec, const HttpOptions& options,
                                const ProgressFn& progress) {
  HttpGlobalInit();
  PartLock lock;
  GANNET_RETURN_IF_ERROR(lock.Acquire(spec));
  for (int round = 0; round < 2; ++round) {
    std::error_code ec;
    int64_t have = static_cast<int64_t>(fs::file_size(spec.part, ec));
    if (ec || (spec.size >= 0 && have > spec.size)) {
      fs::resize_file(spec.part, 0, ec);  // (the locked file stays the same file)
      have = 0;
    }
    Sha256 sha;
    if (have > 0) GANNET_RETURN_IF_ERROR(HashFile(spec.part, have, sha));
    Attempt a;
    if (have == 0 || have < spec.size || spec.size < 0) {
      RunAttempt(spec, options, progress, have, sha, a);
    }
    const Transfer& t = a.t;
    if (a.retry_from_zero && round == 0) {
      fs::resize_file(spec.part, 0, ec);
      continue;
    }
    if (!a.status.ok() || (t.status != 0 && t.status != 200 && t.status != 206)) {
      // Nothing worth resuming: drop the partial file.
      if (a.status.code() == StatusCode::kCorrupt || fs::file_size(spec.part, ec) == 0) {
        fs::remove(spec.part, ec);
      }
    }
    if (!a.status.ok()) {
      const int64_t kept =
          fs::exists(spec.part, ec) ? static_cast<int64_t>(fs::file_size(spec.part, ec)) : 0;
      if (a.status.code() == StatusCode::kIoError && kept > 0) {
        return Status::IoError("download of '" + spec.label + "' interrupted at " +
                               std::to_string(kept) + " of " + std::to_string(spec.size) +
                               " bytes (" + a.status.message() +
                               "); run the same command again to resume");
      }
      return a.status.WithContext("download of '" + spec.label + "'");
    }
    if (t.status != 0 && t.status != 200 && t.status != 206) return HttpStatusError(t, spec);
    const int64_t got = static_cast<int64_t>(fs::file_size(spec.part, ec));
    if (ec || (spec.size >= 0 && got != spec.size)) {
      return Status::IoError("download of '" + spec.label + "' ended at " + std::to_string(got) +
                             " of " + std::to_string(spec.size) +
                             " bytes; run the same command again to resume");
    }
    DownloadResult r{.sha256 = sha.HexDigest(), .resumed_from = t.restarted ? 0 : have};
    std::string want = spec.sha256;
    if (want.empty()) want = Digest(t.linked_etag);
    if (want.empty()) want = Digest(t.etag);
    if (!want.empty() && want != r.sha256) {
      fs::remove(spec.part, ec);
      return Status::Corrupt("sha256 mismatch for '" + spec.label + "': the hub says " + want +
                             ", the downloaded bytes hash to " + r.sha256 +
                             "; the download was deleted");
    }
    r.verified = !want.empty();
    return r;
  }
  return Status::IoError("the server refuses every range of '" + spec.label + "'");
}

std::string EscapePath(std::string_view path) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : path) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace gannet::hub
