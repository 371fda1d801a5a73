// gannet bench: prompt-processing and token-generation speed, llama-bench style.
// Each repetition evaluates a prompt of -p tokens as one batch (pp), then -n tokens one at a time
// after it (tg); a warm-up repetition runs first and is not counted. Tokens are a fixed
// pseudo-random sequence of ordinary vocabulary ids, so runs are repeatable.
//
// Beside tg it prints the bytes one generated token reads from memory and the machine's read
// bandwidth, measured right before and right after every tg phase with the same thread count:
// their product with tg speed says how close decoding comes to the memory roofline, a figure that
// stays meaningful when a shared host's bandwidth changes between runs.
//
// With --spec METHOD it instead compares greedy generation through the engine with and without
// speculative decoding (bench_spec.h).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "base/memory_bandwidth.h"
#include "base/thread_pool.h"
#include "cli/bench_parallel.h"
#include "cli/bench_spec.h"
#include "cli/commands.h"
#include "cli/decode_bytes.h"
#include "cli/op_profile.h"
#include "engine/model_runner.h"

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

// Resident bytes now (/proc/self/statm); 0 where it cannot be read.
int64_t CurrentRssBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

Runner AddBenchCommand(CLI::App& app) {
  struct Opts {
    std::string model;
    int64_t n_prompt = 512, n_gen = 128;
    int threads = 0, reps = 5;
    bool json = false, profile = false, no_fuse = false;
    SpecFlags spec;
    std::string prompt_file;
    std::string parallel;
    float temperature = 0.0f;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub =
      app.add_subcommand("bench", "Measure prompt processing (pp) and token generation (tg) speed");
  sub->add_option("-m,--model", o->model, "GGUF model file, or a model in the store (gannet list)")
      ->required();
  sub->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens, evaluated as one batch")
      ->capture_default_str();
  sub->add_option("-n,--n-gen", o->n_gen, "Tokens generated one at a time after the prompt")
      ->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "Threads (default: one per core)");
  sub->add_option("-r,--repetitions", o->reps, "Measured repetitions (after one warm-up)")
      ->capture_default_str();
  sub->add_flag("--json", o->json,
                "Print one JSON line (pp_tps, tg_tps, their stddevs, peak_rss_bytes, "
                "bytes_per_token, membw_gbps, ...)");
  sub->add_flag("--profile", o->profile,
                "Also report where pp and tg time goes: milliseconds per token by op (matmuls by "
                "weight type and shape), over the measured repetitions (--json: pp_profile and "
                "tg_profile arrays); with --parallel, milliseconds per step by op for each count, "
                "and the engine's time between passes");
  sub->add_flag("--no-fuse", o->no_fuse,
                "Run the model's graph unfused (to measure what the fusion passes gain)");
  AddSpecFlags(sub, &o->spec);
  sub->add_option("-f,--file", o->prompt_file,
                  "With --spec: the prompt's text (default: -p pseudo-random tokens)");
  CLI::Option* parallel = sub->add_option(
      "--parallel", o->parallel,
      "Decode N sequences together through the engine, for each N of a comma-separated "
      "list (e.g. 1,16): -n tokens each after -p prompt tokens each; prints the decode "
      "rate per N and its ratio to the first N's");
  sub->add_option("--temp", o->temperature,
                  "With --parallel: sample at this temperature, the whole vocabulary (1: the "
                  "OpenAI API's defaults), each sequence seeded; 0 (default) is greedy")
      ->check(CLI::Range(0.0f, 2.0f));
  return [o, parallel] {
    const bool spec = o->spec.method != "none";
    std::vector<int32_t> counts;
    if (parallel->count() > 0) {
      if (spec) return ReportError("--parallel and --spec are separate tests");
      size_t at = 0;
      while (at <= o->parallel.size()) {
        const size_t comma = std::min(o->parallel.find(',', at), o->parallel.size());
        const std::string item = o->parallel.substr(at, comma - at);
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 1 || v > 256) {
          return ReportError("--parallel takes a comma-separated list of counts from 1 to 256");
        }
        counts.push_back(static_cast<int32_t>(v));
        at = comma + 1;
      }
      if (o->n_gen < 2 || o->n_gen > 65536)
        return ReportError("--parallel needs -n from 2 to 65536");
    }
    if (o->temperature > 0 && counts.empty()) return ReportError("--temp needs --parallel");
    if (o->n_prompt < 1 || o->n_gen < 0 || o->reps < 1 || o->threads < 0) {
      return ReportError("bench needs -p >= 1, -n >= 0, -r >= 1 and -t >= 0");
    }
    if (Status s = ResolveModelFlag(&o->model); !s.ok()) return ReportError(s);
    if (!o->prompt_file.empty() && !spec) return ReportError("-f needs --spec");
    if (Status s = o->spec.Check(); spec && !s.ok()) return ReportError(s);
    // --spec with a prompt file: the default context (the prompt's length is not known yet).
    const int64_t n_ctx = spec && !o->prompt_file.empty() ? 0 : o->n_prompt + o->n_gen;
    Result<std::unique_ptr<engine::ModelRunner>> loaded = engine::ModelRunner::Load(
        o->model, WithKernelEnv({.n_threads = o->threads,
                                 .n_ctx = n_ctx,
                                 .n_batch = spec || !counts.empty() ? 512 : o->n_prompt,
                                 .fuse_graph = !o->no_fuse}));
    if (!loaded.ok()) return ReportError(loaded.status());
    engine::ModelRunner& eng = **loaded;
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
    if (spec) {
      if (o->n_gen < 2 || o->n_gen > INT32_MAX) return ReportError("--spec needs -n >= 2");
      return RunSpecBench(loaded->get(), {.model = o->model,
                                          .spec = o->spec,
                                          .prompt = prompt,
                                          .prompt_file = o->prompt_file,
                                          .n_gen = static_cast<int32_t>(o->n_gen),
                                          .reps = o->reps,
                                          .json = o->json});
    }

    if (!counts.empty()) {
      return RunParallelBench(loaded->get(), {.model = o->model,
                                              .counts = counts,
                                              .n_prompt = o->n_prompt,
                                              .n_gen = static_cast<int32_t>(o->n_gen),
                                              .reps = o->reps,
                                              .temperature = o->temperature,
                                              .json = o->json,
                                              .profile = o->profile});
    }

    // The probe runs on its own pool of the engine's size; the engine's workers sleep meanwhile.
    ThreadPool probe_pool(eng.n_threads());
    const ReadBandwidthOptions probe_options;
    std::vector<double> membw;
    // The probe's buffer is freed after each probe, but the kernel's peak-RSS mark keeps it: the
    // engine's peak is taken after the warm-up (which allocates everything a repetition uses) and
    // before the first probe, and checked against the resident size after the last repetition.
    int64_t rss = 0;

    using Clock = std::chrono::steady_clock;
    std::vector<double> pp, tg;
    OpProfile pp_profile, tg_profile;
    const graph::NodeObserver pp_observer = pp_profile.Observer(),
                              tg_observer = tg_profile.Observer();
    for (int rep = 0; rep <= o->reps; ++rep) {
      auto t0 = Clock::now();
      pp_profile.Start();
      Result<std::span<const float>> r =
          eng.Evaluate(prompt, 0, false, o->profile && rep > 0 ? &pp_observer : nullptr);
      if (!r.ok()) return ReportError(r.status());
      auto t1 = Clock::now();
      if (rep == 1) rss = PeakRssBytes();
      if (rep > 0) {  // untimed, right before tg
        Result<double> bw = MeasureReadBandwidth(probe_pool, probe_options);
        if (!bw.ok()) return ReportError(bw.status());
        membw.push_back(*bw);
      }
      auto t2 = Clock::now();
      for (int64_t i = 0; i < o->n_gen; ++i) {
        const int32_t one[1] = {gen[i]};
        tg_profile.Start();
        r = eng.Evaluate(one, o->n_prompt + i, false,
                         o->profile && rep > 0 ? &tg_observer : nullptr);
        if (!r.ok()) return ReportError(r.status());
      }
      auto t3 = Clock::now();
      if (rep == 0) continue;                                               // warm-up
      Result<double> bw = MeasureReadBandwidth(probe_pool, probe_options);  // right after tg
      if (!bw.ok()) return ReportError(bw.status());
      membw.push_back(*bw);
      pp.push_back(o->n_prompt / std::chrono::duration<double>(t1 - t0).count());
      if (o->n_gen > 0) tg.push_back(o->n_gen / std::chrono::duration<double>(t3 - t2).count());
    }
    rss = std::max(rss, CurrentRssBytes());
    const Stats p = Summarize(pp), g = Summarize(tg), bw = Summarize(membw);
    const double bw_min = *std::min_element(membw.begin(), membw.end());
    const double bw_max = *std::max_element(membw.begin(), membw.end());
    const DecodeBytes bytes = BytesPerGeneratedToken(eng, o->n_prompt, o->n_gen);
    const double effective_gbps = bytes.total() * g.mean / 1e9;  // 0 without tg
    const double roofline = bw.mean > 0 ? effective_gbps / bw.mean : 0;
    if (o->json) {
      nlohmann::json j = {{"model", o->model},
                          {"n_prompt", o->n_prompt},
                          {"n_gen", o->n_gen},
                          {"threads", eng.n_threads()},
                          {"repetitions", o->reps},
                          {"pp_tps", p.mean},
                          {"pp_tps_stddev", p.stddev},
                          {"tg_tps", g.mean},
                          {"tg_tps_stddev", g.stddev},
                          {"peak_rss_bytes", rss},
                          {"weight_bytes", eng.model().weight_bytes()},
                          {"repacked_bytes", eng.repacked_bytes()},
                          {"repack_s", eng.repack_seconds()},
                          {"bytes_per_token", static_cast<int64_t>(std::llround(bytes.total()))},
                          {"bytes_per_token_weights", bytes.weights},
                          {"bytes_per_token_kv", static_cast<int64_t>(std::llround(bytes.kv))},
                          {"effective_gbps", effective_gbps},
                          {"membw_gbps", bw.mean},
                          {"membw_gbps_min", bw_min},
                          {"membw_gbps_max", bw_max},
                          {"membw_samples", membw.size()},
                          {"roofline_share", roofline}};
      if (o->profile) j["pp_profile"] = pp_profile.Json(o->n_prompt * o->reps, o->reps);
      if (o->profile && o->n_gen > 0)
        j["tg_profile"] = tg_profile.Json(o->n_gen * o->reps, o->n_gen * o->reps);
      std::printf("%s\n", j.dump().c_str());
    } else {
      const char* name = eng.config().name.c_str();
      std::printf(
          "| model | threads | test | t/s | bytes/token | effective GB/s | measured GB/s | "
          "roofline |\n"
          "|---|---|---|---|---|---|---|---|\n");
      std::printf("| %s | %d | pp%lld | %.2f ± %.2f | | | | |\n", name, eng.n_threads(),
                  static_cast<long long>(o->n_prompt), p.mean, p.stddev);
      if (o->n_gen > 0) {
        std::printf("| %s | %d | tg%lld | %.2f ± %.2f | %.1f MB | %.2f | %.2f | %.0f%% |\n", name,
                    eng.n_threads(), static_cast<long long>(o->n_gen), g.mean, g.stddev,
                    bytes.total() / 1e6, effective_gbps, bw.mean, 100 * roofline);
      }
      std::printf("bytes/token: %.1f MB weights + %.2f MB KV cache (mean tg context %.1f)\n",
                  bytes.weights / 1e6, bytes.kv / 1e6, o->n_prompt + (o->n_gen + 1) / 2.0);
      std::printf(
          "measured read bandwidth: %.2f GB/s (min %.2f, max %.2f; %zu probes of %zu MiB, %d "
          "threads, "
          "before and after each tg)\n",
          bw.mean, bw_min, bw_max, membw.size(), probe_options.buffer_bytes >> 20,
          probe_pool.size());
      std::printf(
          "peak RSS: %.1f MiB (weights %.1f MiB: %.1f MiB copied at load, interleaved where a "
          "kernel reads them so, in %.2f s; the rest mapped)\n",
          rss / 1048576.0, eng.model().weight_bytes() / 1048576.0, eng.repacked_bytes() / 1048576.0,
          eng.repack_seconds());
      if (o->profile) pp_profile.Print("pp", o->n_prompt * o->reps, o->reps);
      if (o->profile && o->n_gen > 0)
        tg_profile.Print("tg", o->n_gen * o->reps, o->n_gen * o->reps);
    }
    return 0;
  };
}

}  // namespace gannet::cli
