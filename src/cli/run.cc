// gannet run -m FILE -p TEXT: raw completion of TEXT, text printed as it is generated. One request
// submitted to the Engine, like every other front end.
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "engine/engine.h"

namespace gannet::cli {
namespace {

struct RunOptions {
  std::string model;
  std::optional<std::string> prompt;
  int32_t n_predict = 128;
  GenerationFlags gen;
  // On by default: n-gram drafts cost no pass, and the adaptive control drafts only where they
  // pay (never in a batch whose rows cost what a sequence's do).
  SpecFlags spec{.method = "ngram"};
  int threads = 0;
  int64_t ctx = 0;
  int64_t batch = 512;
  bool json = false;
  bool no_special = false;
};

// What the step thread hands back to main.
struct RunOutcome {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  engine::GenerationResult result;
  std::vector<int32_t> tokens;
  std::string text;
  engine::EngineStats stats;  // after the request (speculative decoding's counts)
};

void PrintText(const std::string& s) {
  if (s.empty()) return;
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

void PrintJson(const std::vector<int32_t>& prompt, const RunOutcome& out, const char* finish,
               int threads) {
  const engine::GenerationTimings& t = out.result.timings;
  const int64_t n_prompt = static_cast<int64_t>(prompt.size()),
                n_gen = static_cast<int64_t>(out.tokens.size());
  nlohmann::json j;
  j["prompt_ids"] = prompt;
  j["gen_ids"] = out.tokens;
  j["text"] = out.text;
  j["finish_reason"] = finish;
  // Prompt: from the step that started the prompt to its first token. Generation: the tokens
  // after the first, over the time from the first to the last (the decode rate).
  j["timings"] = {{"prompt_tokens", n_prompt},
                  {"prompt_seconds", t.prompt},
                  {"prompt_tps", t.prompt > 0 ? n_prompt / t.prompt : 0.0},
                  {"gen_tokens", n_gen},
                  {"gen_seconds", t.decode},
                  {"gen_tps", t.decode > 0 ? (n_gen - 1) / t.decode : 0.0},
                  {"threads", threads}};
  const engine::EngineStats& st = out.stats;
  if (st.spec_steps > 0 || st.spec_draft_tokens > 0) {
    j["speculative"] = {{"steps", st.spec_steps},
                        {"draft_tokens", st.spec_draft_tokens},
                        {"accepted_tokens", st.spec_accepted_tokens}};
  }
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

int Run(RunOptions& o) {
  if (o.n_predict < -1) return ReportError("-n must be -1 or more");
  if (o.threads < 0) return ReportError("--threads must not be negative");
  if (Status s = o.gen.Check(); !s.ok()) return ReportError(s);
  if (Status s = ResolveModelFlag(&o.model); !s.ok()) return ReportError(s);
  std::string prompt_text;
  if (o.prompt) {
    prompt_text = *o.prompt;
  } else {
    Result<std::string> in = ReadStdin();
    if (!in.ok()) return ReportError(in.status());
    prompt_text = std::move(in).value();
  }
  Result<std::unique_ptr<engine::ModelRunner>> runner =
      engine::ModelRunner::Load(o.model, WithKernelEnv({.n_threads = o.threads, .n_ctx = o.ctx}));
  if (!runner.ok()) return ReportError(runner.status());
  if (o.batch < 1 || o.batch > INT32_MAX) return ReportError("--batch-size must be positive");
  engine::EngineOptions eo{
      .max_batch_tokens = static_cast<int32_t>(o.batch), .max_seqs = 1, .max_queue = 1};
  ApplyEngineEnvironment(&eo);
  if (Status s = o.spec.Apply(**runner, &eo); !s.ok()) return ReportError(s);
  Result<std::unique_ptr<engine::Engine>> created = engine::Engine::Create(runner->get(), eo);
  if (!created.ok()) return ReportError(created.status());
  engine::Engine& eng = **created;
  const Tokenizer& tok = eng.tokenizer();

  std::vector<int32_t> prompt =
      tok.Encode(prompt_text, /*add_special=*/true, /*parse_special=*/!o.no_special);
  if (prompt.empty()) return ReportError("the prompt is empty");
  const int64_t ctx = eng.context_length();
  const int64_t room = ctx - static_cast<int64_t>(prompt.size());
  if (room < 1) {
    return ReportError("the prompt has " + std::to_string(prompt.size()) +
                       " tokens; the context holds " + std::to_string(ctx));
  }
  // Generate until the context is full rather than failing midway.
  const bool to_context = o.n_predict < 0 || o.n_predict > room;
  const int32_t max_tokens = static_cast<int32_t>(to_context ? room : o.n_predict);

  if (!o.json) PrintText(prompt_text);
  auto out = std::make_shared<RunOutcome>();
  if (max_tokens > 0) {
    const bool stream = !o.json;
    engine::GenerationCallbacks cb{
        // On the step thread: the only request, so printing here delays nothing else.
        .on_token =
            [out, stream](const engine::TokenEvent& ev) {
              out->tokens.push_back(ev.token);
              out->text += ev.text;
              if (stream) PrintText(ev.text);
            },
        .on_done =
            [out, stream](const engine::GenerationResult& r) {
              std::lock_guard<std::mutex> lock(out->mu);
              out->result = r;
              if (!r.samples.empty()) {
                out->text += r.samples[0].tail;
                if (stream) PrintText(r.samples[0].tail);
              }
              out->done = true;
              out->cv.notify_one();
            }};
    Result<engine::RequestId> id = eng.Submit({.prompt = prompt,
                                               .max_tokens = max_tokens,
                                               .sampling = o.gen.sampling,
                                               .stop = o.gen.stop,
                                               .grammar = o.gen.grammar},
                                              std::move(cb));
    if (!id.ok()) return ReportError(id.status());
    std::unique_lock<std::mutex> lock(out->mu);
    out->cv.wait(lock, [&] { return out->done; });
    if (!out->result.status.ok()) return ReportError(out->result.status);
  }
  out->stats = eng.stats();
  eng.Shutdown(std::chrono::milliseconds(0));

  const engine::FinishReason finish =
      out->result.samples.empty() ? engine::FinishReason::kLength : out->result.samples[0].finish;
  const char* finish_name = finish == engine::FinishReason::kLength && to_context
                                ? "context_full"
                                : engine::FinishReasonName(finish);
  if (o.json) {
    PrintJson(prompt, *out, finish_name, runner->get()->n_threads());
    return 0;
  }
  std::printf("\n");
  std::fflush(stdout);
  const engine::GenerationTimings& t = out->result.timings;
  const int64_t n_prompt = static_cast<int64_t>(prompt.size()),
                n_gen = static_cast<int64_t>(out->tokens.size());
  std::fprintf(
      stderr,
      "prompt: %lld tokens, %.1f tokens/s | generation: %lld tokens, %.1f tokens/s (%d threads)\n",
      static_cast<long long>(n_prompt), t.prompt > 0 ? n_prompt / t.prompt : 0.0,
      static_cast<long long>(n_gen), t.decode > 0 ? (n_gen - 1) / t.decode : 0.0,
      runner->get()->n_threads());
  if (const size_t repacked = runner->get()->repacked_bytes(); repacked > 0) {
    std::fprintf(stderr, "load: %.1f MiB of weights copied for the matmul kernels in %.2f s\n",
                 repacked / 1048576.0, runner->get()->repack_seconds());
  }
  if (const engine::EngineStats& st = out->stats; st.spec_draft_tokens > 0) {
    std::fprintf(stderr,
                 "speculative: %lld of %lld draft tokens accepted; %lld tokens in %lld steps\n",
                 static_cast<long long>(st.spec_accepted_tokens),
                 static_cast<long long>(st.spec_draft_tokens), static_cast<long long>(n_gen),
                 static_cast<long long>(st.steps));
  }
  return 0;
}

}  // namespace

Runner AddRunCommand(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Complete a prompt with a model (raw text completion)");
  sub->add_option("-m,--model", o->model, "GGUF model file, or a model in the store (gannet list)")
      ->required();
  sub->add_option("-p,--prompt", o->prompt, "Prompt text (default: standard input)");
  sub->add_option("-n,--n-predict", o->n_predict,
                  "Tokens to generate (-1: until end of generation)")
      ->capture_default_str();
  AddGenerationFlags(sub, &o->gen);
  AddSpecFlags(sub, &o->spec);
  sub->add_option("-t,--threads", o->threads, "Threads (default: one per core)");
  sub->add_option("-c,--ctx-size", o->ctx, "Context size (default: min(training context, 4096))");
  sub->add_option("-b,--batch-size", o->batch, "Most prompt tokens per forward pass")
      ->capture_default_str();
  sub->add_flag("--no-special", o->no_special,
                "Treat special-token texts in the prompt as plain text");
  sub->add_flag("--json", o->json,
                "Print one JSON object (ids, text, timings) instead of streaming text");
  return [o] { return Run(*o); };
}

}  // namespace gannet::cli
