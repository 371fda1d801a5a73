// gannet serve -m FILE: the OpenAI-compatible HTTP server (server/openai_service.h) on one
// Engine. Prints the URL once the model is ready, logs one line per request to stderr, and
// drains on SIGINT/SIGTERM: stops accepting, lets in-flight requests finish for up to --grace
// seconds, then exits 0.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "chat/template.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "http/http_server.h"
#include "http/termination_signal.h"
#include "server/openai_service.h"

namespace gannet::cli {
namespace {

// "4096", "512K", "512M", "2G", "1.5G" (powers of 1024; an optional trailing B or iB).
Result<size_t> ParseByteSize(const std::string& text) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    return Status::InvalidArgument("'" + text + "' is not a size (e.g. 512M, 2G)");
  }
  std::string unit = text.substr(pos);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && (unit.ends_with("IB") || unit.ends_with("B")))
    unit.resize(unit.ends_with("IB") ? unit.size() - 2 : unit.size() - 1);
  double scale = 1;
  if (unit == "K")
    scale = 1024.0;
  else if (unit == "M")
    scale = 1024.0 * 1024;
  else if (unit == "G")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "T")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "B")
    return Status::InvalidArgument("'" + text + "' has an unknown unit (use K, M, G)");
  if (!(value > 0) || value * scale > 1e15)
    return Status::InvalidArgument("'" + text + "' is not a positive size");
  return static_cast<size_t>(value * scale);
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// The HTTP transport's limits as flags (docs/api.md, "Limits").
struct HttpLimitFlags {
  int max_connections = 10000;
  double idle_timeout = 60;
  double header_timeout = 30;
  size_t min_body_rate = 1024;
  double body_rate_grace = 10;
  double send_timeout = 60;
  int max_requests_per_conn = 1000;
  double max_conn_lifetime = 3600;
  std::string http_memory = "1G";
};

void AddHttpLimitFlags(CLI::App* sub, HttpLimitFlags* f) {
  sub->add_option("--max-connections", f->max_connections,
                  "Open connections (503 past it; lowered to what the fd limit allows)")
      ->capture_default_str();
  sub->add_option("--idle-timeout", f->idle_timeout,
                  "Seconds a keep-alive connection may stay quiet, and a request may go without "
                  "sending a byte (408)")
      ->capture_default_str();
  sub->add_option("--header-timeout", f->header_timeout,
                  "Seconds from a request's first byte to the end of its headers (408 past it)")
      ->capture_default_str();
  sub->add_option("--min-body-rate", f->min_body_rate,
                  "Bytes per second a request body must average, counted from --body-rate-grace "
                  "after its headers (408 below it; 0: off)")
      ->capture_default_str();
  sub->add_option("--body-rate-grace", f->body_rate_grace,
                  "Seconds after its headers before a body's rate is checked")
      ->capture_default_str();
  sub->add_option("--send-timeout", f->send_timeout,
                  "Seconds a client may take no response bytes before it is dropped")
      ->capture_default_str();
  sub->add_option("--max-requests-per-conn", f->max_requests_per_conn,
                  "Requests served on one connection before it is closed")
      ->capture_default_str();
  sub->add_option("--max-conn-lifetime", f->max_conn_lifetime,
                  "Seconds after which a connection takes no new request")
      ->capture_default_str();
  sub->add_option("--http-memory", f->http_memory,
                  "Memory for buffered request bodies and queued responses, all connections "
                  "together (503 / dropped past it), e.g. 512M")
      ->capture_default_str();
}

// The limits as server options (host, port, body size and threads are the caller's), or the
// flag that is out of range.
Result<http::HttpServerOptions> HttpLimits(const HttpLimitFlags& f) {
  if (f.max_connections < 1) return Status::InvalidArgument("--max-connections must be at least 1");
  if (f.max_requests_per_conn < 1)
    return Status::InvalidArgument("--max-requests-per-conn must be at least 1");
  for (const auto& [name, value] : {std::pair{"--idle-timeout", f.idle_timeout},
                                    {"--header-timeout", f.header_timeout},
                                    {"--send-timeout", f.send_timeout},
                                    {"--max-conn-lifetime", f.max_conn_lifetime}}) {
    if (!(value > 0 && value < 1e7))
      return Status::InvalidArgument(std::string(name) + " must be positive");
  }
  if (!(f.body_rate_grace >= 0 && f.body_rate_grace < 1e7))
    return Status::InvalidArgument("--body-rate-grace must not be negative");
  Result<size_t> memory = ParseByteSize(f.http_memory);
  if (!memory.ok()) return Status::InvalidArgument("--http-memory: " + memory.status().message());
  return http::HttpServerOptions{.max_connections = f.max_connections,
                                 .idle_timeout = Millis(f.idle_timeout),
                                 .header_timeout = Millis(f.header_timeout),
                                 .min_body_rate = f.min_body_rate,
                                 .body_rate_grace = Millis(f.body_rate_grace),
                                 .max_requests_per_connection = f.max_requests_per_conn,
                                 .max_connection_lifetime = Millis(f.max_conn_lifetime),
                                 .send_timeout = Millis(f.send_timeout),
                                 .memory_budget = *memory};
}

}  // namespace

Runner AddServeCommand(CLI::App& app) {
  struct Opts {
    std::string model;
    std::string chat_template;
    std::string host = "127.0.0.1";
    int port = 8080;
    std::string api_key;
    int32_t max_queue = 256;
    std::string kv_memory;
    int32_t parallel = 64;
    int32_t batch_tokens = 512;
    int threads = 0;
    int64_t ctx = 0;
    std::string alias;
    double grace = 30;
    int http_threads = 4;
    size_t max_body = 8 << 20;
    size_t max_response = size_t{64} << 20;
    bool no_prefix_cache = false;
    double itl_factor = 2.0;
    // On by default: n-gram drafts cost no pass, and the adaptive control drafts only where they
    // pay (never in a batch whose rows cost what a sequence's do).
    SpecFlags spec{.method = "ngram"};
    std::string allowed_origins;
    bool metrics_no_auth = false;
    bool no_webui = false;
    HttpLimitFlags http;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  sub->add_option("-m,--model", o->model, "GGUF model file, or a model in the store (gannet list)")
      ->required();
  sub->add_option("--chat-template", o->chat_template,
                  "Jinja chat template file (default: the model's own)");
  sub->add_option("--host", o->host,
                  "Address to listen on (0.0.0.0 for all); on a loopback address only requests "
                  "whose Host is localhost, 127.0.0.1 or [::1] are served")
      ->capture_default_str();
  sub->add_option("--port", o->port, "Port (0: pick a free one)")->capture_default_str();
  sub->add_option("--api-key", o->api_key,
                  "Require 'Authorization: Bearer KEY' on /v1/* and /metrics");
  sub->add_flag("--metrics-no-auth", o->metrics_no_auth,
                "Serve /metrics without the API key (for a scraper that cannot send one)");
  sub->add_flag("--no-webui", o->no_webui, "Do not serve the web chat page at /");
  sub->add_option("--allowed-origins", o->allowed_origins,
                  "Comma-separated origins (scheme://host[:port]) whose web pages may call the "
                  "API, or '*' for any; other cross-site browser requests get 403");
  sub->add_option("--max-queue", o->max_queue, "Requests waiting before new ones get 429")
      ->capture_default_str();
  sub->add_option(
      "--kv-memory", o->kv_memory,
      "KV cache pool size, e.g. 512M, 2G, the draft model's K/V included (default: from "
      "free memory)");
  sub->add_option("--parallel", o->parallel, "Most sequences in one forward pass")
      ->capture_default_str();
  sub->add_option("--batch-tokens", o->batch_tokens, "Most tokens in one forward pass")
      ->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "Compute threads (default: one per core)");
  sub->add_option("-c,--ctx-size", o->ctx, "Context length (default: min(training context, 4096))");
  sub->add_option("--alias", o->alias,
                  "Model id in the API (default: the file name without .gguf)");
  sub->add_option("--grace", o->grace,
                  "Seconds in-flight requests may take to finish on SIGINT/SIGTERM")
      ->capture_default_str();
  sub->add_option("--http-threads", o->http_threads, "HTTP handler threads")->capture_default_str();
  sub->add_option("--max-body", o->max_body, "Largest request body in bytes (413 past it)")
      ->capture_default_str();
  sub->add_option("--max-response", o->max_response,
                  "Largest response that is not streamed, in bytes (past it: 400 "
                  "response_too_large; streamed responses have no limit)")
      ->capture_default_str();
  AddSpecFlags(sub, &o->spec);
  AddHttpLimitFlags(sub, &o->http);
  sub->add_option("--itl-factor", o->itl_factor,
                  "Size prompt chunks beside streaming requests so a step takes at most about this "
                  "many times "
                  "a decode-only step (0: use the whole --batch-tokens budget)")
      ->capture_default_str();
  sub->add_flag("--no-prefix-cache", o->no_prefix_cache,
                "Do not reuse the KV cache of shared prompt prefixes");
  return [o] {
    if (o->port < 0 || o->port > 65535) return ReportError("--port must be in [0, 65535]");
    if (o->max_queue < 0) return ReportError("--max-queue must not be negative");
    if (o->parallel < 1) return ReportError("--parallel must be at least 1");
    if (o->batch_tokens < 1) return ReportError("--batch-tokens must be at least 1");
    if (!(o->itl_factor == 0.0 || (o->itl_factor >= 1.1 && o->itl_factor <= 1000.0))) {
      return ReportError("--itl-factor must be 0 (off) or between 1.1 and 1000");
    }
    if (o->threads < 0) return ReportError("--threads must not be negative");
    if (o->ctx < 0) return ReportError("--ctx-size must not be negative");
    if (!(o->grace >= 0)) return ReportError("--grace must not be negative");
    if (o->http_threads < 1) return ReportError("--http-threads must be at least 1");
    if (Status s = ResolveModelFlag(&o->model); !s.ok()) return ReportError(s);
    Result<http::HttpServerOptions> limits = HttpLimits(o->http);
    if (!limits.ok()) return ReportError(limits.status());
    size_t kv_bytes = 0;
    if (!o->kv_memory.empty()) {
      Result<size_t> parsed = ParseByteSize(o->kv_memory);
      if (!parsed.ok()) return ReportError("--kv-memory: " + parsed.status().message());
      kv_bytes = *parsed;
    }
    // Before any thread starts, so every thread inherits the mask and the signal waits for us.
    if (Status s = http::BlockTerminationSignals(); !s.ok()) return ReportError(s);

    const std::string model_id =
        o->alias.empty() ? std::filesystem::path(o->model).stem().string() : o->alias;
    server::OpenAiService service({.model_id = model_id,
                                   .api_key = o->api_key,
                                   .metrics_no_auth = o->metrics_no_auth,
                                   .loopback_host_only = server::IsLoopbackBindAddress(o->host),
                                   .allowed_origins = server::ParseOriginList(o->allowed_origins),
                                   .webui = !o->no_webui,
                                   .total_slots = o->parallel,
                                   .speculative = o->spec.Name(),
                                   .max_response_bytes = o->max_response});
    http::HttpServerOptions http_opts = *std::move(limits);
    http_opts.host = o->host;
    http_opts.port = static_cast<uint16_t>(o->port);
    http_opts.limits.max_body_bytes = o->max_body;
    http_opts.handler_threads = o->http_threads;
    // Probes and scrapers never queue behind slow handlers.
    http_opts.priority_paths = {"/health", "/metrics"};
    http_opts.request_logger = [](const http::RequestLog& log) {
      std::fprintf(stderr, "%s\n", http::FormatRequestLog(log).c_str());
    };
    http::HttpServer http(
        http_opts, [&service](http::HttpRequest req, std::shared_ptr<http::ResponseWriter> w) {
          service.Handle(std::move(req), std::move(w));
        });
    // Listening first: /health answers 503 "loading" while the model loads.
    if (Status s = http.Start(); !s.ok()) return ReportError(s);

    Result<std::unique_ptr<engine::ModelRunner>> loaded = engine::ModelRunner::Load(
        o->model, WithKernelEnv({.n_threads = o->threads, .n_ctx = o->ctx}));
    if (!loaded.ok()) {
      http.Shutdown(std::chrono::milliseconds(0));
      return ReportError(loaded.status());
    }
    Result<ChatTemplate> tmpl = LoadChatTemplate(o->chat_template, (*loaded)->file());
    if (!tmpl.ok()) {
      http.Shutdown(std::chrono::milliseconds(0));
      return ReportError("chat template: " + tmpl.status().message());
    }
    engine::EngineOptions eo{.kv_memory_bytes = kv_bytes,
                             .max_batch_tokens = o->batch_tokens,
                             .max_seqs = o->parallel,
                             .max_queue = o->max_queue,
                             .prefix_caching = !o->no_prefix_cache,
                             .itl_factor = o->itl_factor};
    ApplyEngineEnvironment(&eo);
    if (Status s = o->spec.Apply(**loaded, &eo); !s.ok()) {
      http.Shutdown(std::chrono::milliseconds(0));
      return ReportError(s);
    }
    Result<std::unique_ptr<engine::Engine>> serving = engine::Engine::Create(loaded->get(), eo);
    if (!serving.ok()) {
      http.Shutdown(std::chrono::milliseconds(0));
      return ReportError(serving.status());
    }
    service.Attach(serving->get(), &*tmpl);
    const engine::EngineStats st = (*serving)->stats();
    std::fprintf(stderr, "gannet: model %s (context %lld, %d KV blocks, %d threads)%s\n",
                 model_id.c_str(), static_cast<long long>((*serving)->context_length()),
                 st.kv_blocks_total, (*loaded)->n_threads(),
                 tmpl->is_fallback() ? ", no chat template in the file: using ChatML" : "");
    std::printf(
        "gannet: serving on http://%s:%u\n",
        o->host.find(':') != std::string::npos ? ("[" + o->host + "]").c_str() : o->host.c_str(),
        static_cast<unsigned>(http.port()));
    std::fflush(stdout);

    std::optional<int> sig = http::WaitForTerminationSignal();
    std::fprintf(stderr, "gannet: signal %d: draining (up to %.0f s)\n", sig.value_or(0), o->grace);
    service.set_health(server::ServiceHealth::kDraining);
    const auto grace = std::chrono::milliseconds(static_cast<int64_t>(o->grace * 1000));
    http.Shutdown(grace);
    // Every HTTP exchange is over; whatever the engine still runs has no client left.
    (*serving)->Shutdown(std::chrono::milliseconds(0));
    if (http.abandoned_handlers() > 0) {
      // A handler never returned: it may still use the service and the engine, so nothing may be
      // destroyed under it. Leave now; the process's end frees everything.
      std::fprintf(stderr, "gannet: %d request handler(s) did not return; stopped anyway\n",
                   http.abandoned_handlers());
      std::fflush(nullptr);
      std::_Exit(0);
    }
    std::fprintf(stderr, "gannet: stopped\n");
    return 0;
  };
}

}  // namespace gannet::cli
