// gannet bench --parallel: how decoding scales with the number of sequences in a step.
//
// Each run is a fresh Engine (no prefix cache carried over) with N greedy requests of -p
// pseudo-random prompt tokens each (sequence i's prompt is the same in every run) and -n tokens
// each, end of generation ignored. The decode rate is counted from the moment every sequence has
// its first token (all prompts are in, the steps from then on decode all N) to the last token:
// the tokens after that moment over that time. Sequence 0's tokens must be the same whatever N
// (a sequence's output does not depend on its batch): the run reports whether they are.
#include "cli/bench_parallel.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "base/core_latency.h"
#include "cli/bench_spec.h"
#include "cli/commands.h"
#include "cli/op_profile.h"
#include "engine/engine.h"

namespace gannet::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct RunResult {
  double decode_tps = 0;
  std::vector<int32_t> first_tokens;  // sequence 0's
};

// One run of n sequences; with a profile, every forward pass of it is recorded there and its
// passes counted in *passes.
Result<RunResult> RunOnce(engine::ModelRunner* runner,
                          const std::vector<std::vector<int32_t>>& prompts, int32_t n,
                          int32_t n_gen, float temperature, OpProfile* profile, int64_t* passes) {
  engine::EngineOptions options{.max_seqs = n, .max_queue = n};
  const graph::NodeObserver observer = profile ? profile->Observer() : graph::NodeObserver();
  if (profile != nullptr) {
    profile->Start();  // the time before this run's first pass is none of its steps'
    options.before_step = [profile, passes] {
      profile->Start(/*count_gap=*/true);
      ++*passes;
    };
    options.step_observer = &observer;
  }
  Result<std::unique_ptr<engine::Engine>> created = engine::Engine::Create(runner, options);
  if (!created.ok()) return created.status();
  engine::Engine& eng = **created;
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    int done = 0;
    Status status;
    std::vector<Clock::time_point> first;  // per sequence: its first token's time
    std::vector<Clock::time_point> times;  // every token's, in order of arrival
    std::vector<int32_t> seq0;
  };
  auto sh = std::make_shared<Shared>();
  sh->first.assign(static_cast<size_t>(n), Clock::time_point{});
  sh->times.reserve(static_cast<size_t>(n) * static_cast<size_t>(n_gen));
  for (int32_t i = 0; i < n; ++i) {
    SamplingParams sampling{.temperature = temperature,
                            .top_k = 0,
                            .top_p = 1.0f,
                            .min_p = 0.0f,
                            .seed = 1000 + static_cast<uint64_t>(i)};
    engine::GenerationCallbacks cb{
        .on_token =
            [sh, i](const engine::TokenEvent& ev) {
              const Clock::time_point now = Clock::now();
              std::lock_guard<std::mutex> lock(sh->mu);
              if (sh->first[static_cast<size_t>(i)] == Clock::time_point{})
                sh->first[static_cast<size_t>(i)] = now;
              sh->times.push_back(now);
              if (i == 0) sh->seq0.push_back(ev.token);
            },
        .on_done =
            [sh](const engine::GenerationResult& r) {
              std::lock_guard<std::mutex> lock(sh->mu);
              if (!r.status.ok() && sh->status.ok()) sh->status = r.status;
              ++sh->done;
              sh->cv.notify_one();
            }};
    Result<engine::RequestId> id = eng.Submit({.prompt = prompts[static_cast<size_t>(i)],
                                               .max_tokens = n_gen,
                                               .sampling = sampling,
                                               .stop_at_eog = false},
                                              std::move(cb));
    if (!id.ok()) return id.status();
  }
  {
    std::unique_lock<std::mutex> lock(sh->mu);
    sh->cv.wait(lock, [&] { return sh->done == n; });
  }
  eng.Shutdown(std::chrono::milliseconds(0));
  std::lock_guard<std::mutex> lock(sh->mu);
  if (!sh->status.ok()) return sh->status;
  const Clock::time_point start = *std::max_element(sh->first.begin(), sh->first.end());
  const Clock::time_point end = sh->times.back();
  const auto after = static_cast<double>(std::count_if(
      sh->times.begin(), sh->times.end(), [&](Clock::time_point t) { return t > start; }));
  const double seconds = std::chrono::duration<double>(end - start).count();
  RunResult out;
  out.decode_tps = seconds > 0 ? after / seconds : 0;
  out.first_tokens = std::move(sh->seq0);
  return out;
}

}  // namespace

int RunParallelBench(engine::ModelRunner* runner, const ParallelBenchOptions& o) {
  const int32_t most = *std::max_element(o.counts.begin(), o.counts.end());
  if (o.n_prompt + o.n_gen > runner->n_ctx()) {
    return ReportError("-p and -n need " + std::to_string(o.n_prompt + o.n_gen) +
                       " tokens of context; the model is loaded with " +
                       std::to_string(runner->n_ctx()));
  }
  // Ordinary (non-control) tokens, each sequence's own seed.
  const Tokenizer& tok = runner->tokenizer();
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(most));
  for (int32_t i = 0; i < most; ++i) {
    std::mt19937 rng(1000 + static_cast<uint32_t>(i));
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(tok.n_vocab()) - 1);
    std::vector<int32_t>& p = prompts[static_cast<size_t>(i)];
    if (tok.bos() >= 0) p.push_back(tok.bos());
    while (static_cast<int64_t>(p.size()) < o.n_prompt) {
      int32_t id = pick(rng);
      for (int tries = 0; tries < 1000 && tok.IsControl(id); ++tries) id = pick(rng);
      p.push_back(id);
    }
  }
  std::vector<std::vector<double>> tps(o.counts.size());
  std::vector<OpProfile> profiles(o.counts.size());
  std::vector<int64_t> passes(o.counts.size(), 0);
  // The cores' round trip right before each measured run: where the OS (or a VM's host) placed
  // the two cores changes the rates (core_latency.h).
  std::vector<std::vector<double>> trips(o.counts.size());
  std::vector<int32_t> reference;
  bool identical = true;
  for (int rep = 0; rep <= o.reps; ++rep) {  // rep 0 warms up and is not counted
    for (size_t k = 0; k < o.counts.size(); ++k) {
      const size_t c = rep % 2 == 0 ? k : o.counts.size() - 1 - k;  // alternate the order
      if (rep > 0) {
        Result<double> trip = MeasureCoreRoundTripNs();
        if (!trip.ok()) return ReportError(trip.status());
        trips[c].push_back(*trip);
      }
      const bool profiled = o.profile && rep > 0;
      Result<RunResult> r = RunOnce(runner, prompts, o.counts[c], o.n_gen, o.temperature,
                                    profiled ? &profiles[c] : nullptr, &passes[c]);
      if (!r.ok()) return ReportError(r.status());
      if (reference.empty()) reference = r->first_tokens;
      identical = identical && r->first_tokens == reference;
      if (rep > 0) tps[c].push_back(r->decode_tps);
    }
  }
  const double base = MedianOf(tps[0]);
  if (o.json) {
    nlohmann::json runs = nlohmann::json::array();
    for (size_t c = 0; c < o.counts.size(); ++c) {
      const double m = MedianOf(tps[c]);
      runs.push_back({{"sequences", o.counts[c]},
                      {"tg_tps", m},
                      {"tg_tps_runs", tps[c]},
                      {"over_first", base > 0 ? m / base : 0},
                      {"core_round_trip_ns", trips[c]}});
      if (o.profile) {
        runs.back()["steps"] = passes[c];
        runs.back()["profile"] = profiles[c].Json(std::max<int64_t>(passes[c], 1),
                                                  std::max<int64_t>(passes[c], 1), "step");
      }
    }
    nlohmann::json j = {{"model", o.model},       {"threads", runner->n_threads()},
                        {"n_prompt", o.n_prompt}, {"n_gen", o.n_gen},
                        {"repetitions", o.reps},  {"temperature", o.temperature},
                        {"runs", runs},           {"identical", identical}};
    std::printf("%s\n", j.dump().c_str());
    return identical ? 0 : 1;
  }
  const char* name = runner->config().name.c_str();
  std::printf(
      "| model | threads | test | sequences | t/s (median) | ms per step | over %d | core round "
      "trip ns |\n"
      "|---|---|---|---|---|---|---|---|\n",
      o.counts[0]);
  for (size_t c = 0; c < o.counts.size(); ++c) {
    const double m = MedianOf(tps[c]);
    std::printf("| %s | %d | tg%d after %lld | %d | %.2f | %.2f | %.2fx | %.0f [%.0f-%.0f] |\n",
                name, runner->n_threads(), o.n_gen, static_cast<long long>(o.n_prompt), o.counts[c],
                m, m > 0 ? 1000.0 * o.counts[c] / m : 0.0, base > 0 ? m / base : 0.0,
                MedianOf(trips[c]), *std::min_element(trips[c].begin(), trips[c].end()),
                *std::max_element(trips[c].begin(), trips[c].end()));
  }
  char sampling[64] = "greedy";
  if (o.temperature > 0) {
    std::snprintf(sampling, sizeof(sampling), "seeded draws at temperature %g", o.temperature);
  }
  std::printf("%d repetitions; %s; sequence 0's tokens %s across counts\n", o.reps, sampling,
              identical ? "identical" : "DIFFER");
  for (size_t c = 0; o.profile && c < o.counts.size(); ++c) {
    const std::string what = std::to_string(o.counts[c]) + " sequences";
    profiles[c].Print(what.c_str(), std::max<int64_t>(passes[c], 1),
                      std::max<int64_t>(passes[c], 1), "step");
  }
  return identical ? 0 : 1;
}

}  // namespace gannet::cli
