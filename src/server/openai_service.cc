#include "server/openai_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "chat/prompt.h"
#include "grammar/grammar_cache.h"
#include "http/sse.h"
#include "server/openai_format.h"
#include "server/tokenize_api.h"
#include "server/tool_output.h"
#include "server/webui.h"
#include "tokenizer/tokenizer.h"

namespace gannet::server {

using http::HttpRequest;
using http::HttpResponse;
using http::ResponseWriter;
using http::SseDone;
using http::SseEvent;
using http::SseHeaders;

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// OpenAI's finish_reason has no word for a cancelled or failed sample; neither reaches a client
// that is still there as anything but an ended text.
const char* FinishReasonWord(engine::FinishReason f) {
  return f == engine::FinishReason::kLength ? "length" : "stop";
}

// Constant-time comparison, so the key cannot be guessed byte by byte from response times.
bool SecretEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.size() + 1)]);
  return diff == 0;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "host:port" -> "host" (a bracketed IPv6 literal keeps its brackets); nullopt when the port is
// not decimal digits.
std::optional<std::string_view> StripPort(std::string_view host) {
  const size_t colon = host.rfind(':');
  const size_t bracket = host.rfind(']');
  if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket))
    return host;
  const std::string_view port = host.substr(colon + 1);
  if (port.empty() || port.size() > 5) return std::nullopt;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return host.substr(0, colon);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr const char* kCorsMethods = "GET, POST, OPTIONS";
constexpr const char* kCorsHeaders = "Authorization, Content-Type";

}  // namespace

bool IsLoopbackHost(std::string_view host) {
  const std::optional<std::string_view> name = StripPort(host);
  if (!name) return false;
  const std::string lower = Lower(*name);
  return lower == "localhost" || lower == "127.0.0.1" || lower == "[::1]";
}

bool IsLoopbackBindAddress(std::string_view address) {
  const std::string lower = Lower(address);
  if (lower == "localhost" || lower == "::1" || lower == "[::1]") return true;
  in_addr v4{};
  const std::string text(address);
  return inet_pton(AF_INET, text.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

std::vector<std::string> ParseOriginList(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view item = Trim(list.substr(0, comma));
    while (!item.empty() && item.back() == '/') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

// One accepted completion request: what the engine's callbacks need to answer it. Shared by the
// callbacks (step thread) and the handler (worker) until on_done.
struct OpenAiService::Generation {
  struct Sample {
    std::string text;  // released text (whole responses)
    std::vector<LogprobEntry> logprobs;
    Clock::time_point last_token{};
  };

  OpenAiService* service = nullptr;
  const Tokenizer* tok = nullptr;
  std::shared_ptr<ResponseWriter> writer;
  ResponseMeta meta;
  bool stream = false, include_usage = false, logprobs = false;
  int64_t prompt_tokens = 0;
  Clock::time_point start = Clock::now();
  bool first_token_seen = false;
  // Recursive: the handler holds it across Submit and StartStream, so callbacks that arrive on the
  // step thread before the stream has started wait; recursive in case an engine ever calls back
  // inline from Submit.
  std::recursive_mutex mu;
  std::vector<Sample> samples;
  // A response held until the end (not streamed): its bytes so far, and whether it passed
  // options.max_response_bytes (then its generation is cancelled and it is answered with a 400).
  size_t held_bytes = 0;
  bool too_large = false;
  engine::Engine* engine = nullptr;
  engine::RequestId request_id = 0;
  // With tools (tool_choice other than none): per sample, its text read as content and calls.
  std::vector<std::unique_ptr<ChoiceToolOutput>> tool_outputs;

  LogprobEntry MakeLogprob(const engine::TokenEvent& ev, int64_t text_offset) const {
    LogprobEntry e{.token = tok->TokenToPiece(ev.token, /*render_special=*/true),
                   .logprob = ev.logprob,
                   .text_offset = text_offset};
    for (const TokenLogprob& t : ev.top) {
      e.top.push_back(
          {.token = tok->TokenToPiece(t.id, /*render_special=*/true), .logprob = t.logprob});
    }
    return e;
  }

  void WriteEvent(const std::string& json) {
    if (writer->IsClosed()) return;
    writer->Write(SseEvent(json));  // kBackpressure: queued anyway; kClosed: on-close cancels us
  }

  void OnToken(const engine::TokenEvent& ev) {
    std::lock_guard<std::recursive_mutex> lock(mu);
    if (ev.sample_index < 0 || ev.sample_index >= static_cast<int32_t>(samples.size())) return;
    Sample& s = samples[ev.sample_index];
    const Clock::time_point now = Clock::now();
    if (!first_token_seen) {
      first_token_seen = true;
      service->metrics_.ObserveTimeToFirstToken(Seconds(now - start));
    }
    if (s.last_token != Clock::time_point{})
      service->metrics_.ObserveInterTokenLatency(Seconds(now - s.last_token));
    s.last_token = now;
    if (writer->IsClosed()) return;  // the client left; Cancel is on its way
    if (stream && !tool_outputs.empty()) {
      for (const ChunkDelta& d : tool_outputs[ev.sample_index]->Stream(ev.sample_index, ev.text,
                                                                       /*last=*/false)) {
        WriteEvent(ChunkJson(meta, d));
      }
    } else if (stream) {
      ChunkDelta d{.index = ev.sample_index, .has_logprobs = logprobs};
      if (logprobs) d.logprobs.push_back(MakeLogprob(ev, ev.text_offset));
      if (!ev.text.empty() || logprobs) {
        d.text = ev.text;
        WriteEvent(ChunkJson(meta, d));
      }
    } else if (!too_large) {
      s.text += ev.text;
      held_bytes += ev.text.size();
      if (logprobs) {
        s.logprobs.push_back(MakeLogprob(ev, ev.text_offset));
        const LogprobEntry& e = s.logprobs.back();
        // As JSON: the token, its bytes (a number each) and a few fields, for it and each top one.
        held_bytes += 64 + 5 * e.token.size();
        for (const auto& t : e.top) held_bytes += 48 + 5 * t.token.size();
      }
      if (held_bytes > service->options_.max_response_bytes) {
        too_large = true;
        samples.assign(samples.size(), Sample{});  // the held text is not sent
        engine->Cancel(request_id);
      }
    }
  }

  void OnDone(const engine::GenerationResult& result) {
    std::lock_guard<std::recursive_mutex> lock(mu);
    service->metrics_.ObserveEndToEnd(Seconds(Clock::now() - start));
    const Usage usage{
        .prompt_tokens = result.prompt_tokens > 0 ? result.prompt_tokens : prompt_tokens,
        .completion_tokens = result.completion_tokens,
        .cached_tokens = result.cached_prompt_tokens};
    std::string finishes;
    std::vector<ChoiceResult> choices;
    for (size_t i = 0; i < samples.size(); ++i) {
      Sample& s = samples[i];
      const bool known = i < result.samples.size();
      std::string tail = known ? result.samples[i].tail : std::string();
      const char* reason =
          FinishReasonWord(known ? result.samples[i].finish : engine::FinishReason::kCancelled);
      ChoiceResult choice{.index = static_cast<int32_t>(i)};
      if (!tool_outputs.empty()) {
        ChoiceToolOutput& out = *tool_outputs[i];
        if (stream) {
          for (const ChunkDelta& d : out.Stream(static_cast<int32_t>(i), tail, /*last=*/true))
            WriteEvent(ChunkJson(meta, d));
          tail.clear();
        } else {
          out.Whole(s.text + tail, &choice);
        }
        reason = ToolFinishReason(reason, out.called());
      } else {
        choice.text = s.text + tail;
      }
      if (!finishes.empty()) finishes += ',';
      finishes += reason;
      if (stream) {
        if (!tail.empty())
          WriteEvent(ChunkJson(meta, {.index = static_cast<int32_t>(i), .text = std::move(tail)}));
        WriteEvent(ChunkJson(
            meta,
            {.index = static_cast<int32_t>(i), .has_logprobs = false, .finish_reason = reason}));
      } else {
        choice.finish_reason = reason;
        choice.has_logprobs = logprobs;
        choice.logprobs = std::move(s.logprobs);
        choices.push_back(std::move(choice));
      }
    }
    if (too_large) return SendTooLarge();
    // A request the engine found invalid only while running it (a grammar too ambiguous to
    // mask at token speed) is the client's error; anything else is the server's.
    const bool client_error = result.status.code() == StatusCode::kInvalidArgument;
    int status = result.status.ok() ? 200 : client_error ? 400 : 500;
    if (writer->IsClosed()) status = 499;  // the client left first (nginx's code for it)
    service->metrics_.CountRequest(status);
    // Before the last bytes go out: the access-log record is written when the response completes.
    writer->SetLogNote("prompt=" + std::to_string(usage.prompt_tokens) +
                       " completion=" + std::to_string(usage.completion_tokens) +
                       " cached=" + std::to_string(usage.cached_tokens) +
                       " finish=" + (result.status.ok() ? finishes : "error"));
    if (!result.status.ok()) {
      ApiError err{.http_status = status == 499 ? (client_error ? 400 : 500) : status,
                   .message = "generation failed: " + result.status.message(),
                   .type = client_error ? "invalid_request_error" : "server_error"};
      if (stream) {
        WriteEvent(ApiErrorJson(err));
      } else {
        service->SendError(*writer, err, /*count=*/false);
      }
    } else if (!stream) {
      writer->Send(200, kJson, CompletionResponseJson(meta, choices, usage));
    } else if (include_usage) {
      WriteEvent(UsageChunkJson(meta, usage));
    }
    if (stream) {
      if (!writer->IsClosed()) writer->Write(SseDone());
      (void)writer->End();
    }
  }

  void SendTooLarge() {
    service->SendError(
        *writer,
        {.message = "The response would be larger than " +
                    std::to_string(service->options_.max_response_bytes >> 20) +
                    " MiB; request it with stream: true, or with fewer samples (n), tokens "
                    "(max_tokens) or logprobs (top_logprobs).",
         .code = "response_too_large"});
  }
};

OpenAiService::OpenAiService(OpenAiServiceOptions options)
    : options_(std::move(options)), created_(static_cast<int64_t>(std::time(nullptr))) {}

void OpenAiService::Attach(engine::Engine* serving, const ChatTemplate* chat_template) {
  chat_template_ = chat_template;
  tool_format_ =
      chat_template != nullptr ? DetectToolCallFormat(*chat_template) : ToolCallFormat::kGeneric;
  tool_markers_ = FindToolMarkerTokens(tool_format_, serving->tokenizer());
  options_.limits.n_vocab = serving->tokenizer().n_vocab();
  serving_.store(serving);
  health_.store(ServiceHealth::kReady);
}

void OpenAiService::SendError(ResponseWriter& writer, const ApiError& error, bool count) {
  HttpResponse resp{.status = error.http_status,
                    .headers = {{"Content-Type", kJson}},
                    .body = ApiErrorJson(error)};
  if (error.http_status == 429)
    resp.headers.emplace_back("Retry-After", std::to_string(options_.retry_after_seconds));
  if (error.http_status == 401) resp.headers.emplace_back("WWW-Authenticate", "Bearer");
  if (count) metrics_.CountRequest(error.http_status);
  (void)writer.Send(std::move(resp));
}

bool OpenAiService::Authorized(const HttpRequest& request) const {
  if (options_.api_key.empty()) return true;
  const std::string* auth = request.headers.Get("Authorization");
  if (auth == nullptr) return false;
  static constexpr std::string_view kBearer = "Bearer ";
  if (auth->size() < kBearer.size()) return false;
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>((*auth)[i])) !=
        std::tolower(static_cast<unsigned char>(kBearer[i]))) {
      return false;
    }
  }
  return SecretEquals(auth->substr(kBearer.size()), options_.api_key);
}

bool OpenAiService::OriginAllowed(const std::string& origin, const std::string* host) const {
  const std::string lower = Lower(origin);
  for (const std::string& allowed : options_.allowed_origins) {
    if (allowed == "*" || Lower(allowed) == lower) return true;
  }
  // The server's own origin: a page it (or a proxy in front of it) served.
  if (host == nullptr) return false;
  const std::string own = Lower(*host);
  return lower == "http://" + own || lower == "https://" + own;
}

bool OpenAiService::AdmitBrowserRequest(const HttpRequest& request, ResponseWriter& writer) {
  const std::string* host = request.headers.Get("Host");
  if (options_.loopback_host_only && host != nullptr && !IsLoopbackHost(*host)) {
    SendError(writer,
              {.http_status = 403,
               .message = "Host '" + *host +
                          "' is not allowed: this server listens on a loopback address and "
                          "answers only requests for localhost, 127.0.0.1 or [::1].",
               .code = "host_not_allowed"},
              /*count=*/false);
    return false;
  }
  const std::string* origin = request.headers.Get("Origin");
  if (origin != nullptr) {
    if (!OriginAllowed(*origin, host)) {
      SendError(writer,
                {.http_status = 403,
                 .message = "Origin '" + *origin +
                            "' is not allowed to call this server (see --allowed-origins).",
                 .code = "origin_not_allowed"},
                /*count=*/false);
      return false;
    }
    (void)writer.AddHeader("Access-Control-Allow-Origin", *origin);
    (void)writer.AddHeader("Vary", "Origin");
  }
  if (request.method != "OPTIONS") return true;
  HttpResponse resp{.status = 204};
  if (origin != nullptr && request.headers.Get("Access-Control-Request-Method") != nullptr) {
    resp.headers = {{"Access-Control-Allow-Methods", kCorsMethods},
                    {"Access-Control-Allow-Headers", kCorsHeaders},
                    {"Access-Control-Max-Age", "600"}};
  } else {
    resp.headers = {{"Allow", kCorsMethods}};
  }
  (void)writer.Send(std::move(resp));
  return false;
}

void OpenAiService::SendUnauthorized(const HttpRequest& request, ResponseWriter& writer) {
  const bool sent = request.headers.Get("Authorization") != nullptr;
  SendError(writer,
            {.http_status = 401,
             .message = sent ? "Incorrect API key provided."
                             : "You didn't provide an API key. You need to provide your API key "
                               "in an Authorization header using Bearer auth (i.e. "
                               "Authorization: Bearer YOUR_KEY).",
             .code = "invalid_api_key"},
            /*count=*/false);
}

void OpenAiService::Handle(HttpRequest request, std::shared_ptr<ResponseWriter> writer) {
  if (!AdmitBrowserRequest(request, *writer)) return;
  const std::string& path = request.path;
  if (path == "/health") return HandleHealth(request, *writer);
  if (path == "/metrics") return HandleMetrics(request, *writer);
  // The page itself needs no key: it asks for one when an API call answers 401.
  if (options_.webui && IsWebUiPath(path)) {
    (void)writer->Send(*WebUiResponse(request));
    return;
  }
  const bool chat = path == "/v1/chat/completions";
  const bool completion = path == "/v1/completions";
  const bool models = path == "/v1/models" || path.rfind("/v1/models/", 0) == 0;
  const bool utility = path == "/tokenize" || path == "/detokenize" || path == "/props";
  if (!chat && !completion && !models && !utility) {
    SendError(*writer,
              {.http_status = 404,
               .message = "Unknown request URL: " + request.method + " " + path + ".",
               .code = "unknown_url"},
              /*count=*/false);
    return;
  }
  if (!Authorized(request)) return SendUnauthorized(request, *writer);
  if (models) return HandleModels(request, *writer);
  if (utility) return HandleUtility(request, *writer);
  if (request.method != "POST") return SendNotAllowed(request, *writer, "POST");
  HandleCompletion(chat ? Endpoint::kChat : Endpoint::kCompletion, request, std::move(writer));
}

void OpenAiService::SendNotAllowed(const HttpRequest& request, ResponseWriter& writer,
                                   const char* allow) {
  HttpResponse resp{
      .status = 405,
      .headers = {{"Content-Type", kJson}, {"Allow", allow}},
      .body = ApiErrorJson({.http_status = 405,
                            .message = "Method " + request.method + " is not allowed for " +
                                       request.path + "; use " + allow + "."})};
  (void)writer.Send(std::move(resp));
}

namespace {
bool IsGet(const HttpRequest& request) {
  return request.method == "GET" || request.method == "HEAD";
}
}  // namespace

void OpenAiService::HandleHealth(const HttpRequest& request, ResponseWriter& writer) {
  if (!IsGet(request)) return SendNotAllowed(request, writer, "GET");
  const ServiceHealth h = health_.load();
  const char* word = h == ServiceHealth::kReady     ? "ok"
                     : h == ServiceHealth::kLoading ? "loading"
                                                    : "draining";
  (void)writer.Send(h == ServiceHealth::kReady ? 200 : 503, kJson,
                    std::string("{\"status\":\"") + word + "\"}");
}

void OpenAiService::HandleMetrics(const HttpRequest& request, ResponseWriter& writer) {
  if (!IsGet(request)) return SendNotAllowed(request, writer, "GET");
  if (!options_.metrics_no_auth && !Authorized(request)) return SendUnauthorized(request, writer);
  engine::Engine* serving = serving_.load();
  (void)writer.Send(200, "text/plain; version=0.0.4; charset=utf-8",
                    metrics_.Render(serving != nullptr ? serving->stats() : engine::EngineStats{}));
}

void OpenAiService::HandleModels(const HttpRequest& request, ResponseWriter& writer) {
  if (!IsGet(request)) return SendNotAllowed(request, writer, "GET");
  if (request.path == "/v1/models") {
    (void)writer.Send(200, kJson, ModelListJson(options_.model_id, created_));
    return;
  }
  const std::string id = request.path.substr(std::string("/v1/models/").size());
  if (id != options_.model_id) {
    SendError(writer,
              {.http_status = 404,
               .message = "The model '" + id + "' does not exist.",
               .param = "model",
               .code = "model_not_found"},
              /*count=*/false);
    return;
  }
  (void)writer.Send(200, kJson,
                    "{\"id\":" + nlohmann::json(options_.model_id).dump() +
                        ",\"object\":\"model\",\"created\":" + std::to_string(created_) +
                        ",\"owned_by\":\"gannet\"}");
}

void OpenAiService::HandleUtility(const HttpRequest& request, ResponseWriter& writer) {
  const bool props = request.path == "/props";
  if (props ? !IsGet(request) : request.method != "POST")
    return SendNotAllowed(request, writer, props ? "GET" : "POST");
  engine::Engine* serving = serving_.load();
  if (serving == nullptr) {
    SendError(writer, {.http_status = 503,
                       .message = "The model is still loading; retry shortly.",
                       .type = "server_error",
                       .code = "model_loading"});
    return;
  }
  const Tokenizer& tok = serving->tokenizer();
  std::string body;
  std::optional<ApiError> err;
  if (props) {
    body = PropsJson({.model_id = options_.model_id,
                      .context_length = serving->context_length(),
                      .total_slots = options_.total_slots,
                      .chat_template = chat_template_ != nullptr ? chat_template_->source() : "",
                      .speculative = options_.speculative,
                      .build = options_.system_fingerprint},
                     tok);
  } else if (request.path == "/tokenize") {
    err = TokenizeJson(request.body, tok, options_.limits.json, &body);
  } else {
    err = DetokenizeJson(request.body, tok, options_.limits.json, &body);
  }
  if (err) return SendError(writer, *err);
  (void)writer.Send(200, kJson, std::move(body));
}

void OpenAiService::HandleCompletion(Endpoint endpoint, const HttpRequest& request,
                                     std::shared_ptr<ResponseWriter> writer) {
  engine::Engine* serving = serving_.load();
  if (serving == nullptr || health_.load() != ServiceHealth::kReady) {
    SendError(*writer, {.http_status = 503,
                        .message = health_.load() == ServiceHealth::kDraining
                                       ? "The server is shutting down."
                                       : "The model is still loading.",
                        .type = "server_error"});
    return;
  }
  CompletionRequest req;
  if (auto err = ParseCompletionRequest(request.body, endpoint, options_.limits, &req)) {
    SendError(*writer, *err);
    return;
  }
  if (auto err = ToolGrammar(req)) {
    SendError(*writer, *err);
    return;
  }
  std::optional<std::vector<int32_t>> prompt =
      PromptIds(endpoint, req, serving->tokenizer(), *writer);
  if (!prompt) return;
  const int64_t ctx = serving->context_length();
  const int64_t n_prompt = static_cast<int64_t>(prompt->size());
  if (n_prompt >= ctx || (req.max_tokens && n_prompt + *req.max_tokens > ctx)) {
    SendError(*writer, ContextLengthError(endpoint, ctx, n_prompt, req.max_tokens.value_or(0),
                                          req.max_tokens.has_value()));
    return;
  }
  StartGeneration(*serving, endpoint, std::move(req), std::move(*prompt), std::move(writer));
}

std::optional<ApiError> OpenAiService::ToolGrammar(CompletionRequest& req) const {
  if (!req.tools || req.tools->choice == ToolChoiceMode::kNone) return std::nullopt;
  const bool lazy = ToolOutputLazy(tool_format_, *req.tools);
  Result<std::string> gbnf = lazy ? ToolCallLazyGbnf(tool_format_, *req.tools, tool_markers_)
                                  : ToolCallGbnf(tool_format_, *req.tools, tool_markers_);
  if (gbnf.ok() && gbnf->empty()) return std::nullopt;  // free output, parsed afterwards
  Result<std::shared_ptr<const grammar::Grammar>> g =
      gbnf.ok() ? grammar::CompileShared(*gbnf)
                : Result<std::shared_ptr<const grammar::Grammar>>(gbnf.status());
  if (!g.ok()) {
    return ApiError{.message = "Invalid 'tools': the grammar of the calls cannot be built: " +
                               g.status().message(),
                    .param = "tools"};
  }
  req.grammar = std::move(g).value();
  if (lazy) req.grammar_triggers = ToolCallTriggers(tool_format_, tool_markers_);
  return std::nullopt;
}

std::optional<std::vector<int32_t>> OpenAiService::PromptIds(Endpoint endpoint,
                                                             CompletionRequest& req,
                                                             const Tokenizer& tok,
                                                             ResponseWriter& writer) {
  std::vector<int32_t> prompt;
  if (endpoint == Endpoint::kChat) {
    ChatRenderInput input{.messages = std::move(req.messages),
                          .add_generation_prompt = true,
                          .now = std::time(nullptr)};
    const ToolSpec* tools = req.tools ? &*req.tools : nullptr;
    // The generic tool description goes into a system message; a template that refuses one gets
    // it in the first user message instead.
    std::optional<ChatRenderInput> retry;
    if (tools != nullptr && tool_format_ == ToolCallFormat::kGeneric) retry = input;
    PrepareToolPrompt(tool_format_, tools, &input);
    Result<std::vector<int32_t>> rendered =
        RenderChatPrompt(*chat_template_, tok, std::move(input));
    if (!rendered.ok() && retry) {
      PrepareToolPrompt(tool_format_, tools, &*retry, ToolPromptPlacement::kFirstUserMessage);
      Result<std::vector<int32_t>> again =
          RenderChatPrompt(*chat_template_, tok, std::move(*retry));
      if (again.ok()) rendered = std::move(again);
    }
    if (!rendered.ok()) {
      SendError(writer, {.message = "The chat template rejected the conversation: " +
                                    rendered.status().message(),
                         .param = "messages"});
      return std::nullopt;
    }
    prompt = std::move(rendered).value();
  } else if (req.prompt_is_tokens) {
    prompt = std::move(req.prompt_tokens);
  } else {
    prompt = tok.Encode(req.prompt_text, /*add_special=*/true, /*parse_special=*/true);
  }
  if (prompt.empty()) {
    SendError(writer, {.message = "The prompt is empty.",
                       .param = endpoint == Endpoint::kChat ? "messages" : "prompt"});
    return std::nullopt;
  }
  return prompt;
}

void OpenAiService::StartGeneration(engine::Engine& engine, Endpoint endpoint,
                                    CompletionRequest req, std::vector<int32_t> prompt,
                                    std::shared_ptr<ResponseWriter> writer) {
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  auto gen = std::make_shared<Generation>();
  gen->service = this;
  gen->tok = &engine.tokenizer();
  gen->writer = writer;
  gen->meta = ResponseMeta{.endpoint = endpoint,
                           .id = NewResponseId(endpoint),
                           .created = static_cast<int64_t>(std::time(nullptr)),
                           .model = options_.model_id,
                           .system_fingerprint = options_.system_fingerprint};
  gen->stream = req.stream;
  gen->include_usage = req.include_usage;
  gen->logprobs = req.logprobs;
  gen->prompt_tokens = n_prompt;
  gen->samples.resize(static_cast<size_t>(req.n));
  if (req.tools && req.tools->choice != ToolChoiceMode::kNone) {
    const bool constrained = ToolOutputConstrained(tool_format_, *req.tools);
    for (int32_t i = 0; i < req.n; ++i)
      gen->tool_outputs.push_back(std::make_unique<ChoiceToolOutput>(tool_format_, constrained));
  }

  engine::GenerationRequest sreq{.prompt = std::move(prompt),
                                 .max_tokens = static_cast<int32_t>(
                                     req.max_tokens.value_or(engine.context_length() - n_prompt)),
                                 .n = req.n,
                                 .sampling = req.sampling,
                                 .stop_at_eog = !req.ignore_eos,
                                 .stop = std::move(req.stop),
                                 .top_logprobs = req.logprobs ? req.top_logprobs : -1,
                                 .grammar = std::move(req.grammar),
                                 .grammar_triggers = std::move(req.grammar_triggers)};
  // The markers of the model's calls are text the tool-call parser reads.
  if (req.tools && req.tools->choice != ToolChoiceMode::kNone)
    sreq.render_tokens = tool_markers_.ids();
  engine::GenerationCallbacks callbacks{
      .on_token = [gen](const engine::TokenEvent& ev) { gen->OnToken(ev); },
      .on_done = [gen](const engine::GenerationResult& r) { gen->OnDone(r); }};

  std::lock_guard<std::recursive_mutex> lock(gen->mu);
  Result<engine::RequestId> id = engine.Submit(std::move(sreq), std::move(callbacks));
  if (!id.ok()) {
    const Status& s = id.status();
    if (s.code() == StatusCode::kResourceExhausted) {
      SendError(*writer, {.http_status = 429,
                          .message = "The server is busy (" + s.message() + "); retry shortly.",
                          .type = "requests",
                          .code = "rate_limit_exceeded"});
    } else if (s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kOutOfRange) {
      SendError(*writer, {.message = s.message()});
    } else {
      SendError(*writer, {.http_status = 503, .message = s.message(), .type = "server_error"});
    }
    return;
  }
  if (req.stream) {
    (void)writer->StartStream(200, SseHeaders());
    if (endpoint == Endpoint::kChat) {
      for (int32_t i = 0; i < req.n; ++i) {
        gen->WriteEvent(ChunkJson(gen->meta, {.index = i, .role = true, .text = std::string()}));
      }
    }
  }
  gen->engine = &engine;
  gen->request_id = *id;
  // A client that leaves stops its generation at once (the KV blocks go back at the next step).
  writer->SetOnClose([engine_ptr = &engine, rid = *id] { engine_ptr->Cancel(rid); });
}

}  // namespace gannet::server
