// gannet run -m FILE -p TEXT: raw completion of TEXT, tokens printed as they are generated.
#include <cstdio>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/engine.h"

namespace gannet::cli {

Runner AddRunCommand(CLI::App& app) {
  struct Opts {
    std::string model;
    std::optional<std::string> prompt;
    int32_t n_predict = 128;
    SamplingParams sampling;
    std::optional<uint64_t> seed;
    int threads = 0;
    int64_t ctx = 0;
    int64_t batch = 512;
    bool json = false;
    bool no_special = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("run", "Complete a prompt with a model (raw text completion)");
  sub->add_option("-m,--model", o->model, "GGUF model file")->required();
  sub->add_option("-p,--prompt", o->prompt, "Prompt text (default: standard input)");
  sub->add_option("-n,--n-predict", o->n_predict, "Tokens to generate (-1: until end of generation)")
      ->capture_default_str();
  sub->add_option("--temp", o->sampling.temperature, "Temperature (0: greedy)")->capture_default_str();
  sub->add_option("--top-k", o->sampling.top_k, "Top-k (0: off)")->capture_default_str();
  sub->add_option("--top-p", o->sampling.top_p, "Top-p (1: off)")->capture_default_str();
  sub->add_option("--min-p", o->sampling.min_p, "Min-p (0: off)")->capture_default_str();
  sub->add_option("--repeat-penalty", o->sampling.repeat_penalty, "Repetition penalty (1: off)")
      ->capture_default_str();
  sub->add_option("--repeat-last-n", o->sampling.repeat_last_n, "Tokens the repetition penalty looks back")
      ->capture_default_str();
  sub->add_option("--presence-penalty", o->sampling.presence_penalty, "Presence penalty")->capture_default_str();
  sub->add_option("--frequency-penalty", o->sampling.frequency_penalty, "Frequency penalty")->capture_default_str();
  sub->add_option("-s,--seed", o->seed, "Random seed (default: random)");
  sub->add_option("-t,--threads", o->threads, "Threads (default: one per core)");
  sub->add_option("-c,--ctx-size", o->ctx, "Context size (default: min(training context, 4096))");
  sub->add_option("-b,--batch-size", o->batch, "Most prompt tokens per forward pass")->capture_default_str();
  sub->add_flag("--no-special", o->no_special, "Treat special-token texts in the prompt as plain text");
  sub->add_flag("--json", o->json, "Print one JSON object (ids, text, timings) instead of streaming text");
  return [o] {
    if (o->n_predict < -1) return ReportError("-n must be -1 or more");
    if (o->threads < 0) return ReportError("--threads must not be negative");
    if (o->seed) o->sampling.seed = *o->seed;
    if (Status s = o->sampling.Validate(); !s.ok()) return ReportError(s);
    std::string prompt;
    if (o->prompt) {
      prompt = *o->prompt;
    } else {
      Result<std::string> in = ReadStdin();
      if (!in.ok()) return ReportError(in.status());
      prompt = std::move(in).value();
    }
    Result<std::unique_ptr<engine::Engine>> loaded =
        engine::Engine::Load(o->model, {.n_threads = o->threads, .n_ctx = o->ctx, .n_batch = o->batch});
    if (!loaded.ok()) return ReportError(loaded.status());
    engine::Engine& eng = **loaded;
    const Tokenizer& tok = eng.tokenizer();

    engine::GenerateRequest req;
    req.prompt = tok.Encode(prompt, /*add_special=*/true, /*parse_special=*/!o->no_special);
    req.max_tokens = o->n_predict;
    req.sampling = o->sampling;
    if (req.prompt.empty()) return ReportError("the prompt is empty");
    if (o->n_predict < 0 || static_cast<int64_t>(req.prompt.size()) + o->n_predict > eng.n_ctx()) {
      // Generate until the context is full rather than failing midway.
      req.max_tokens = -1;
    }

    IncrementalDecoder decoder(tok);
    std::string text;
    auto on_token = [&](int32_t id) {
      std::string piece = decoder.Feed(id);
      text += piece;
      if (!o->json && !piece.empty()) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
      return true;
    };
    if (!o->json) {
      std::fwrite(prompt.data(), 1, prompt.size(), stdout);
      std::fflush(stdout);
    }
    Result<engine::GenerateResult> res = eng.Generate(req, on_token);
    if (!res.ok()) return ReportError(res.status());
    std::string tail = decoder.Finish();
    text += tail;
    const engine::GenerateStats& st = res->stats;
    if (o->json) {
      nlohmann::json j;
      j["prompt_ids"] = req.prompt;
      j["gen_ids"] = res->tokens;
      j["text"] = text;
      j["finish_reason"] = engine::FinishReasonName(res->finish);
      j["timings"] = {{"prompt_tokens", st.n_prompt},     {"prompt_seconds", st.prompt_seconds},
                      {"prompt_tps", st.prompt_tps()},    {"gen_tokens", st.n_gen},
                      {"gen_seconds", st.gen_seconds},    {"gen_tps", st.gen_tps()},
                      {"threads", eng.n_threads()}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::fwrite(tail.data(), 1, tail.size(), stdout);
      std::printf("\n");
      std::fflush(stdout);
      std::fprintf(stderr, "prompt: %lld tokens, %.1f tokens/s | generation: %lld tokens, %.1f tokens/s (%d threads)\n",
                   static_cast<long long>(st.n_prompt), st.prompt_tps(), static_cast<long long>(st.n_gen),
                   st.gen_tps(), eng.n_threads());
    }
    return 0;
  };
}

}  // namespace gannet::cli
