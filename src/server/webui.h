// The web chat page: plain HTML, CSS and JavaScript (src/server/webui/) embedded in the binary at
// build time and served by `gannet serve` at "/" (the page) and "/webui/<file>" (its scripts and
// styles). The page talks to the server only through the public API (/props,
// /v1/chat/completions), from the same origin, with the API key the user types in; serving the
// files themselves needs no key.
//
// Every answer carries a strict Content-Security-Policy (scripts, styles and fetches from this
// origin only, no inline script, HTML sinks only through the page's one Trusted Types policy),
// nosniff, no framing, and an ETag with "Cache-Control: no-cache": a browser revalidates and gets
// 304 while the binary is unchanged.
//
// Thread-safety: pure functions over constant data; call from any thread.
#pragma once

#include <optional>
#include <string_view>

#include "http/http_parser.h"
#include "http/response_writer.h"

namespace gannet::server {

// Whether `path` belongs to the page: "/", "/index.html" or "/webui/...".
bool IsWebUiPath(std::string_view path);

// The answer to a request for one of the page's paths; nullopt when IsWebUiPath(request.path) is
// false. GET and HEAD: 200 with the file, or 304 when If-None-Match names its ETag; an unknown
// file under /webui/: 404; other methods: 405 with Allow.
std::optional<http::HttpResponse> WebUiResponse(const http::HttpRequest& request);

}  // namespace gannet::server
