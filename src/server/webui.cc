#include "server/webui.h"

#include <string>
#include <utility>

#include "server/openai_request.h"
#include "server/webui_assets.h"

namespace gannet::server {

using http::HttpRequest;
using http::HttpResponse;

namespace {

constexpr std::string_view kAssetPrefix = "/webui/";

// Scripts, styles, images and fetches from this origin only; no inline script or style, no
// plugins, no framing, no form posts; innerHTML and friends accept only what the page's
// "gannet-markdown" Trusted Types policy made (the markdown renderer's escaped output).
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types gannet-markdown";

std::string_view ContentType(std::string_view name) {
  auto ends_with = [name](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

const internal::EmbeddedFile* FindFile(std::string_view name) {
  for (size_t i = 0; i < internal::kWebUiFilesCount; ++i) {
    if (name == internal::kWebUiFiles[i].name) return &internal::kWebUiFiles[i];
  }
  return nullptr;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// If-None-Match is "*" or a comma-separated list of entity tags, weak ("W/...") or strong; the
// comparison is the weak one (RFC 9110 §13.1.2).
bool EtagMatches(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    const size_t comma = if_none_match.find(',');
    std::string_view tag = Trim(if_none_match.substr(0, comma));
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

http::HeaderList SecurityHeaders() {
  return {{"Content-Security-Policy", kContentSecurityPolicy},
          {"X-Content-Type-Options", "nosniff"},
          {"X-Frame-Options", "DENY"},
          {"Referrer-Policy", "no-referrer"},
          {"Cross-Origin-Opener-Policy", "same-origin"}};
}

HttpResponse JsonError(int status, std::string message) {
  return HttpResponse{.status = status,
                      .headers = {{"Content-Type", "application/json"}},
                      .body = ApiErrorJson({.http_status = status, .message = std::move(message)})};
}

}  // namespace

bool IsWebUiPath(std::string_view path) {
  return path == "/" || path == "/index.html" ||
         path.substr(0, kAssetPrefix.size()) == kAssetPrefix;
}

std::optional<HttpResponse> WebUiResponse(const HttpRequest& request) {
  const std::string_view path = request.path;
  if (!IsWebUiPath(path)) return std::nullopt;
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse resp = JsonError(
        405, "Method " + request.method + " is not allowed for " + request.path + "; use GET.");
    resp.headers.emplace_back("Allow", "GET, HEAD");
    return resp;
  }
  const std::string_view name = path.substr(0, kAssetPrefix.size()) == kAssetPrefix
                                    ? path.substr(kAssetPrefix.size())
                                    : std::string_view("index.html");
  const internal::EmbeddedFile* file = FindFile(name);
  if (file == nullptr) return JsonError(404, "The web page has no file " + request.path + ".");
  const std::string etag = std::string("\"") + file->hash + "\"";
  HttpResponse resp{.status = 200, .headers = SecurityHeaders()};
  resp.headers.emplace_back("ETag", etag);
  resp.headers.emplace_back("Cache-Control", "no-cache");
  const std::string* if_none_match = request.headers.Get("If-None-Match");
  if (if_none_match != nullptr && EtagMatches(*if_none_match, etag)) {
    resp.status = 304;
    return resp;
  }
  resp.headers.emplace_back("Content-Type", std::string(ContentType(name)));
  resp.body.assign(reinterpret_cast<const char*>(file->data), file->size);
  return resp;
}

}  // namespace gannet::server
