// gannet bench: prompt-processing and token-generation speed, llama-bench style.
// Each repetition evaluates a prompt of -p tokens as one batch (pp), then -n tokens one at a time
// after it (tg); a warm-up repetition runs first and is not counted. Tokens are a fixed
// pseudo-random sequence of ordinary vocabulary ids, so runs are repeatable.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/engine.h"

namespace gannet::cli {
namespace {

struct Stats {
  double mean = 0, stddev = 0;
};

Stats Summarize(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return s;
}

int64_t PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace

Runner AddBenchCommand(CLI::App& app) {
  struct Opts {
    std::string model;
    int64_t n_prompt = 512, n_gen = 128;
    int threads = 0, reps = 5;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("bench", "Measure prompt processing (pp) and token generation (tg) speed");
  sub->add_option("-m,--model", o->model, "GGUF model file")->required();
  sub->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens, evaluated as one batch")->capture_default_str();
  sub->add_option("-n,--n-gen", o->n_gen, "Tokens generated one at a time after the prompt")->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "Threads (default: one per core)");
  sub->add_option("-r,--repetitions", o->reps, "Measured repetitions (after one warm-up)")->capture_default_str();
  sub->add_flag("--json", o->json, "Print one JSON line (pp_tps, tg_tps, their stddevs, peak_rss_bytes, ...)");
  return [o] {
    if (o->n_prompt < 1 || o->n_gen < 0 || o->reps < 1 || o->threads < 0) {
      return ReportError("bench needs -p >= 1, -n >= 0, -r >= 1 and -t >= 0");
    }
    const int64_t n_ctx = o->n_prompt + o->n_gen;
    Result<std::unique_ptr<engine::Engine>> loaded =
        engine::Engine::Load(o->model, {.n_threads = o->threads, .n_ctx = n_ctx, .n_batch = o->n_prompt});
    if (!loaded.ok()) return ReportError(loaded.status());
    engine::Engine& eng = **loaded;
    const Tokenizer& tok = eng.tokenizer();

    // Ordinary (non-control) tokens, drawn with a fixed seed.
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(tok.n_vocab()) - 1);
    auto draw = [&] {
      int32_t id = pick(rng);
      for (int tries = 0; tries < 1000 && tok.IsControl(id); ++tries) id = pick(rng);
      return id;  // a vocabulary of control tokens only still gets a valid id
    };
    std::vector<int32_t> prompt(o->n_prompt), gen(o->n_gen);
    if (tok.bos() >= 0) prompt[0] = tok.bos();
    for (int64_t i = tok.bos() >= 0 ? 1 : 0; i < o->n_prompt; ++i) prompt[i] = draw();
    for (int32_t& t : gen) t = draw();

    using Clock = std::chrono::steady_clock;
    std::vector<double> pp, tg;
    for (int rep = 0; rep <= o->reps; ++rep) {
      auto t0 = Clock::now();
      Result<std::span<const float>> r = eng.Evaluate(prompt, 0, false);
      if (!r.ok()) return ReportError(r.status());
      auto t1 = Clock::now();
      for (int64_t i = 0; i < o->n_gen; ++i) {
        const int32_t one[1] = {gen[i]};
        r = eng.Evaluate(one, o->n_prompt + i, false);
        if (!r.ok()) return ReportError(r.status());
      }
      auto t2 = Clock::now();
      if (rep == 0) continue;  // warm-up
      pp.push_back(o->n_prompt / std::chrono::duration<double>(t1 - t0).count());
      if (o->n_gen > 0) tg.push_back(o->n_gen / std::chrono::duration<double>(t2 - t1).count());
    }
    const Stats p = Summarize(pp), g = Summarize(tg);
    const int64_t rss = PeakRssBytes();
    if (o->json) {
      nlohmann::json j = {{"model", o->model},          {"n_prompt", o->n_prompt},   {"n_gen", o->n_gen},
                          {"threads", eng.n_threads()}, {"repetitions", o->reps},    {"pp_tps", p.mean},
                          {"pp_tps_stddev", p.stddev},  {"tg_tps", g.mean},          {"tg_tps_stddev", g.stddev},
                          {"peak_rss_bytes", rss},      {"weight_bytes", eng.model().weight_bytes()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("| model | threads | test | t/s |\n|---|---|---|---|\n");
      std::printf("| %s | %d | pp%lld | %.2f ± %.2f |\n", eng.config().name.c_str(), eng.n_threads(),
                  static_cast<long long>(o->n_prompt), p.mean, p.stddev);
      if (o->n_gen > 0) {
        std::printf("| %s | %d | tg%lld | %.2f ± %.2f |\n", eng.config().name.c_str(), eng.n_threads(),
                    static_cast<long long>(o->n_gen), g.mean, g.stddev);
      }
      std::printf("peak RSS: %.1f MiB (weights %.1f MiB, mapped)\n", rss / 1048576.0,
                  eng.model().weight_bytes() / 1048576.0);
    }
    return 0;
  };
}

}  // namespace gannet::cli
