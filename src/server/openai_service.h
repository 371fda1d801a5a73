// OpenAiService: the OpenAI-compatible endpoints as an HttpHandler over an engine::Engine.
//
//   POST /v1/chat/completions, POST /v1/completions   generation (whole or streamed as SSE)
//   GET  /v1/models, GET /v1/models/{id}              the loaded model
//   GET  /health                                      200 {"status":"ok"}; 503 while loading /
//                                                     draining
//   GET  /metrics                                     Prometheus text (server/metrics.h)
//   GET  /, /webui/<file>                             the web chat page (server/webui.h); no key
//   OPTIONS (any path)                                CORS preflight, or the allowed methods
//
// Before routing, every request passes the browser checks: a loopback-bound server refuses a
// Host that is not a loopback name (DNS rebinding), a request with an Origin that is neither the
// server's own nor in allowed_origins is refused (403 in OpenAI's error shape), and responses to
// allowed cross-origin requests carry Access-Control-Allow-Origin.
//
// A completion request is parsed and validated (server/openai_request.h), its prompt rendered
// with the model's chat template and tokenized, checked against the context, and submitted to the
// Engine. The handler returns at once; the engine's step thread then writes the answer through
// the ResponseWriter as text deltas arrive (the engine's output processor keeps UTF-8 whole and
// holds back what may be a stop string). A client that disconnects cancels its request at once, so
// its KV blocks are freed at the next engine step. With `tools`, the prompt gets them in the
// template's tool-call format (chat/tool_calls.h), a required or named call is grammar-constrained,
// and each choice's text is read back as content and calls (server/tool_output.h) before it is
// sent.
//
// Thread-safety: Handle runs on the HTTP workers, concurrently; Attach and set_health may be
// called from any thread. The Engine and ChatTemplate given to Attach must outlive every
// request (shut the HttpServer, then the Engine, down before destroying them).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/template.h"
#include "chat/tool_calls.h"
#include "engine/engine.h"
#include "http/http_parser.h"
#include "http/response_writer.h"
#include "server/metrics.h"
#include "server/openai_request.h"

namespace gannet::server {

struct OpenAiServiceOptions {
  std::string model_id = "model";  // what /v1/models lists and responses name
  // Non-empty: /v1/* and /metrics need "Authorization: Bearer <api_key>".
  std::string api_key;
  // /metrics stays open without the key (for a scraper that cannot send one).
  bool metrics_no_auth = false;
  // The server listens on a loopback address only: a request whose Host is not a loopback name
  // (localhost, 127.0.0.1, [::1], with or without a port) is refused with 403, so a web page
  // whose DNS name was rebound to 127.0.0.1 cannot read the API. Off for other bind addresses.
  bool loopback_host_only = false;
  // Origins ("scheme://host[:port]") whose pages may call the API from a browser; "*" allows
  // any. A request that carries an Origin is refused with 403 unless the origin is listed or is
  // the server's own (http(s)://<Host>); requests without Origin (non-browser clients) pass.
  std::vector<std::string> allowed_origins;
  // Serve the web chat page at "/" (server/webui.h).
  bool webui = true;
  int retry_after_seconds = 1;       // the Retry-After of a 429
  int32_t total_slots = 0;           // /props: sequences decoded together (--parallel)
  std::string speculative = "none";  // /props: the speculative decoding method
  RequestLimits limits;              // n_vocab is filled in by Attach
  // A response that is not streamed is held until the generation ends: past this many bytes of
  // text and logprobs (n = 16 samples with top_logprobs = 20 can reach hundreds of MB), its
  // generation is cancelled and the answer is a 400 (code response_too_large) that asks for
  // stream: true or fewer samples, tokens or logprobs.
  size_t max_response_bytes = size_t{64} << 20;
  std::string system_fingerprint = "gannet-0.1.0";
};

enum class ServiceHealth { kLoading, kReady, kDraining };

// Whether a Host header value names this machine's loopback: "localhost", "127.0.0.1" or "[::1]",
// case-insensitive, with or without ":port".
bool IsLoopbackHost(std::string_view host);
// Whether a listening address is loopback only: "localhost", 127.0.0.0/8, "::1" / "[::1]".
bool IsLoopbackBindAddress(std::string_view address);
// "a, b,c" -> {"a", "b", "c"}: an --allowed-origins value, trimmed, trailing '/' dropped.
std::vector<std::string> ParseOriginList(std::string_view list);

class OpenAiService {
 public:
  explicit OpenAiService(OpenAiServiceOptions options);
  OpenAiService(const OpenAiService&) = delete;
  OpenAiService& operator=(const OpenAiService&) = delete;

  // Connects the engine once the model is loaded and marks the service ready.
  void Attach(engine::Engine* serving, const ChatTemplate* chat_template);
  void set_health(ServiceHealth health) { health_.store(health); }

  // The HttpHandler.
  void Handle(http::HttpRequest request, std::shared_ptr<http::ResponseWriter> writer);

  ServerMetrics& metrics() { return metrics_; }

 private:
  struct Generation;

  // The routes other than completions; each checks its method.
  void HandleHealth(const http::HttpRequest& request, http::ResponseWriter& writer);
  void HandleMetrics(const http::HttpRequest& request, http::ResponseWriter& writer);
  void HandleModels(const http::HttpRequest& request, http::ResponseWriter& writer);
  // POST /tokenize, POST /detokenize, GET /props (server/tokenize_api.h).
  void HandleUtility(const http::HttpRequest& request, http::ResponseWriter& writer);
  void SendNotAllowed(const http::HttpRequest& request, http::ResponseWriter& writer,
                      const char* allow);
  // A completion request: parse, prompt ids, context check, then Submit.
  void HandleCompletion(Endpoint endpoint, const http::HttpRequest& request,
                        std::shared_ptr<http::ResponseWriter> writer);
  // With tools whose output is constrained: their grammar into req.grammar (chat/tool_calls.h);
  // auto in a native format: the lazy grammar of the calls and its triggers.
  std::optional<ApiError> ToolGrammar(CompletionRequest& req) const;
  // The prompt as token ids (chat: rendered by the template, with the tools as the model's
  // format wants them); an error answer was sent when empty.
  std::optional<std::vector<int32_t>> PromptIds(Endpoint endpoint, CompletionRequest& req,
                                                const Tokenizer& tok, http::ResponseWriter& writer);
  // Submits the generation and answers it from the engine's callbacks (whole or streamed).
  void StartGeneration(engine::Engine& engine, Endpoint endpoint, CompletionRequest req,
                       std::vector<int32_t> prompt, std::shared_ptr<http::ResponseWriter> writer);
  void SendError(http::ResponseWriter& writer, const ApiError& error, bool count = true);
  bool Authorized(const http::HttpRequest& request) const;
  void SendUnauthorized(const http::HttpRequest& request, http::ResponseWriter& writer);
  // Host and Origin checks (DNS rebinding, cross-site calls) and CORS: false when the request
  // was answered here (403, or a preflight).
  bool AdmitBrowserRequest(const http::HttpRequest& request, http::ResponseWriter& writer);
  bool OriginAllowed(const std::string& origin, const std::string* host) const;

  OpenAiServiceOptions options_;
  std::atomic<ServiceHealth> health_{ServiceHealth::kLoading};
  std::atomic<engine::Engine*> serving_{nullptr};
  const ChatTemplate* chat_template_ = nullptr;  // set by Attach before serving_ is published
  ToolCallFormat tool_format_ = ToolCallFormat::kGeneric;  // of chat_template_, set by Attach
  // The format's markers that are control tokens of the model's vocabulary, set by Attach: a
  // request with tools has them rendered in its output, and its grammars name them by id.
  ToolMarkerTokens tool_markers_;
  int64_t created_ = 0;  // Unix time of start, /v1/models' "created"
  ServerMetrics metrics_;
};

}  // namespace gannet::server
