// gannet bench --spec METHOD: decode speed with and without speculative decoding, side by side.
//
// Speculation pays only where drafts are accepted, which depends on the text, so this test runs
// real generations through the engine (not ModelRunner::Evaluate on fixed tokens): a greedy
// completion of -n tokens after the prompt (-f FILE's text, or -p pseudo-random tokens), once
// without speculation and once with METHOD per repetition, alternating which goes first, each on
// its own Engine over the one loaded model. It prints decode tokens/s of both, their ratio, the
// acceptance (accepted / verified draft tokens) and the tokens per step, and checks that both
// runs produced the same tokens (speculation must not change greedy output).
#include "cli/bench_spec.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

namespace gannet::cli {
namespace {

struct OneRun {
  double decode_tps = 0;
  std::vector<int32_t> tokens;
  engine::EngineStats stats;
};

// One greedy generation on a fresh Engine (so no prefix cache or controller state carries over).
Result<OneRun> GenerateOnce(engine::ModelRunner* runner, const engine::EngineOptions& options,
                            const std::vector<int32_t>& prompt, int32_t n_gen) {
  Result<std::unique_ptr<engine::Engine>> created = engine::Engine::Create(runner, options);
  if (!created.ok()) return created.status();
  engine::Engine& eng = **created;
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    engine::GenerationResult result;
    std::vector<int32_t> tokens;
  };
  auto sh = std::make_shared<Shared>();
  engine::GenerationCallbacks cb{
      .on_token = [sh](const engine::TokenEvent& ev) { sh->tokens.push_back(ev.token); },
      .on_done =
          [sh](const engine::GenerationResult& r) {
            std::lock_guard<std::mutex> lock(sh->mu);
            sh->result = r;
            sh->done = true;
            sh->cv.notify_one();
          }};
  SamplingParams greedy;
  greedy.temperature = 0;
  Result<engine::RequestId> id =
      eng.Submit({.prompt = prompt, .max_tokens = n_gen, .sampling = greedy, .stop_at_eog = false},
                 std::move(cb));
  if (!id.ok()) return id.status();
  {
    std::unique_lock<std::mutex> lock(sh->mu);
    sh->cv.wait(lock, [&] { return sh->done; });
  }
  if (!sh->result.status.ok()) return sh->result.status;
  OneRun run;
  run.stats = eng.stats();
  eng.Shutdown(std::chrono::milliseconds(0));
  run.tokens = std::move(sh->tokens);
  const double decode = sh->result.timings.decode;
  const double n = static_cast<double>(run.tokens.size()) - 1;  // the first token ends the prompt
  run.decode_tps = decode > 0 && n > 0 ? n / decode : 0;
  return run;
}

struct Totals {
  std::vector<double> base_tps, spec_tps;
  // Over the speculative runs: tokens sampled after the first (which ends the prompt's pass),
  // draft tokens verified and accepted. With one sequence a decode step yields one token plus the
  // draft tokens it accepted, so the decode steps are decoded - accepted.
  int64_t decoded = 0, drafted = 0, accepted = 0;
  bool identical = true;
};

void PrintTable(const SpecBenchOptions& o, const engine::ModelRunner& runner, int64_t n_prompt,
                const Totals& t) {
  const double base = MedianOf(t.base_tps), spec = MedianOf(t.spec_tps);
  const int64_t decode_steps = t.decoded - t.accepted;
  const double per_step =
      decode_steps > 0 ? static_cast<double>(t.decoded) / static_cast<double>(decode_steps) : 0;
  const double acceptance =
      t.drafted > 0 ? static_cast<double>(t.accepted) / static_cast<double>(t.drafted) : 0;
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"threads", runner.n_threads()},
                        {"n_prompt", n_prompt},
                        {"n_gen", o.n_gen},
                        {"repetitions", o.reps},
                        {"spec", o.spec.Name()},
                        {"spec_max_tokens", o.spec.max_tokens},
                        {"tg_tps_base", base},
                        {"tg_tps_spec", spec},
                        {"speedup", base > 0 ? spec / base : 0},
                        {"tokens_per_step", per_step},
                        {"draft_tokens", t.drafted},
                        {"accepted_tokens", t.accepted},
                        {"acceptance", acceptance},
                        {"identical", t.identical}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  const char* name = runner.config().name.c_str();
  std::printf(
      "| model | threads | test | spec | t/s (median) | tokens/step | accepted / drafted |\n"
      "|---|---|---|---|---|---|---|\n");
  std::printf("| %s | %d | tg%d after %lld | none | %.2f | 1.00 | |\n", name, runner.n_threads(),
              o.n_gen, static_cast<long long>(n_prompt), base);
  std::printf("| %s | %d | tg%d after %lld | %s (max %d) | %.2f | %.2f | %lld / %lld (%.0f%%) |\n",
              name, runner.n_threads(), o.n_gen, static_cast<long long>(n_prompt),
              o.spec.Name().c_str(), o.spec.max_tokens, spec, per_step,
              static_cast<long long>(t.accepted), static_cast<long long>(t.drafted),
              100 * acceptance);
  std::printf("speedup %.2fx over %d repetitions; outputs %s\n", base > 0 ? spec / base : 0.0,
              o.reps, t.identical ? "identical" : "DIFFER");
}

}  // namespace

double MedianOf(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

int RunSpecBench(engine::ModelRunner* runner, const SpecBenchOptions& o) {
  engine::EngineOptions with_spec{.max_seqs = 1, .max_queue = 1};
  SpecFlags flags = o.spec;
  if (Status s = flags.Apply(*runner, &with_spec); !s.ok()) return ReportError(s);
  engine::EngineOptions without = with_spec;
  without.spec = engine::SpecMethod::kNone;
  std::vector<int32_t> prompt = o.prompt;
  if (!o.prompt_file.empty()) {
    // The prompt and -n must fit the context, so more than 64 MiB of text never could.
    Result<std::string> text = ReadTextFile(o.prompt_file, "prompt file", size_t{64} << 20);
    if (!text.ok()) return ReportError(text.status());
    prompt = runner->tokenizer().Encode(*text, /*add_special=*/true, /*parse_special=*/false);
  }
  if (prompt.empty()) return ReportError("the prompt is empty");
  if (const int64_t need = static_cast<int64_t>(prompt.size()) + o.n_gen; need > runner->n_ctx()) {
    return ReportError("the prompt and -n need " + std::to_string(need) +
                       " tokens of context; the model is loaded with " +
                       std::to_string(runner->n_ctx()));
  }
  Totals t;
  std::vector<int32_t> reference;
  for (int rep = 0; rep <= o.reps; ++rep) {  // rep 0 warms up and is not counted
    for (int k = 0; k < 2; ++k) {
      const bool spec_run = (rep + k) % 2 == 1;  // alternate which configuration goes first
      Result<OneRun> r = GenerateOnce(runner, spec_run ? with_spec : without, prompt, o.n_gen);
      if (!r.ok()) return ReportError(r.status());
      if (reference.empty()) reference = r->tokens;
      t.identical = t.identical && r->tokens == reference;
      if (rep == 0) continue;
      (spec_run ? t.spec_tps : t.base_tps).push_back(r->decode_tps);
      if (!spec_run) continue;
      t.decoded += static_cast<int64_t>(r->tokens.size()) - 1;
      t.drafted += r->stats.spec_draft_tokens;
      t.accepted += r->stats.spec_accepted_tokens;
    }
  }
  PrintTable(o, *runner, static_cast<int64_t>(prompt.size()), t);
  return t.identical ? 0 : 1;
}

}  // namespace gannet::cli
