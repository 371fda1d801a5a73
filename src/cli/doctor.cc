// gannet doctor: validates this host (and optionally a model file) before it serves, in the
// manner of SuperBench (ATC'24): the CPU and the kernel target that will run, the threads to use,
// the memory bandwidth, a quick conformance run of the kernels against their scalar twins
// (kernels/cpu/self_check.h), and for -m FILE: does it load, the memory it needs, and the
// decode speed the bandwidth allows beside a short measured decode.
//
// One line per check: "ok", "warn" or "FAIL", its name and what was found. The exit status is
// 1 when a check fails. GANNET_DOCTOR_FAIL=NAME[,NAME...] (for testing the failure path) makes
// the named checks fail; a name without "/" also names every check of that family
// ("matmul" fails matmul/scalar, matmul/avx2, ...).
#include <sched.h>
#include <sys/sysinfo.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "base/core_latency.h"
#include "base/memory_bandwidth.h"
#include "cli/commands.h"
#include "cli/decode_bytes.h"
#include "engine/model_runner.h"
#include "engine/paged_kv.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/self_check.h"

namespace gannet::cli {
namespace {

enum class Verdict { kOk, kWarn, kFail };

// Prints each check as it completes and remembers whether one failed.
class Report {
 public:
  explicit Report(const char* forced) {
    std::stringstream ss(forced != nullptr ? forced : "");
    for (std::string name; std::getline(ss, name, ',');) {
      if (!name.empty()) forced_.insert(name);
    }
  }
  void Add(const std::string& name, Verdict v, std::string detail) {
    const std::string family = name.substr(0, name.find('/'));
    if (forced_.count(name) > 0 || forced_.count(family) > 0) {
      matched_.insert(forced_.count(name) > 0 ? name : family);
      v = Verdict::kFail;
      detail += " [forced to fail by GANNET_DOCTOR_FAIL]";
    }
    static const char* const kWords[] = {"ok", "warn", "FAIL"};
    std::printf("%-4s  %-17s %s\n", kWords[static_cast<int>(v)], name.c_str(), detail.c_str());
    std::fflush(stdout);
    ++counts_[static_cast<int>(v)];
  }
  bool failed() const { return counts_[2] > 0; }
  // A forced name that matched no check (a typo, or a model check without -m) is reported, so a
  // test of the failure path cannot pass by accident.
  void PrintSummary() {
    for (const std::string& name : forced_) {
      if (matched_.count(name) == 0)
        Add("doctor", Verdict::kWarn, "GANNET_DOCTOR_FAIL names no check that ran: " + name);
    }
    std::printf("doctor: %d checks: %d ok, %d warn, %d failed\n",
                counts_[0] + counts_[1] + counts_[2], counts_[0], counts_[1], counts_[2]);
  }

 private:
  std::set<std::string> forced_, matched_;
  int counts_[3] = {0, 0, 0};
};

std::string ReadLineOf(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

// The CPUs this process may run on, and how many distinct physical cores they are.
std::pair<int, int> LogicalAndPhysicalCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) {
    const int n = ThreadPool::HardwareThreads();
    return {n, n};
  }
  std::set<std::pair<std::string, std::string>> cores;
  int logical = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    ++logical;
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const std::string pkg = ReadLineOf(dir + "physical_package_id");
    const std::string core = ReadLineOf(dir + "core_id");
    cores.insert({pkg, core.empty() ? "cpu" + std::to_string(cpu) : core});
  }
  return {logical, static_cast<int>(cores.size())};
}

int64_t MemInfoBytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::atoll(line.c_str() + key.size() + 1) * 1024;
  }
  return 0;
}

std::string Mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MiB", bytes / 1048576.0);
  return buf;
}

void CheckCpu(Report& report) {
  const cpu::CpuFeatures& f = cpu::DetectCpuFeatures();
  std::string features;
  const std::pair<const char*, bool> named[] = {{"avx2", f.avx2},
                                                {"fma", f.fma},
                                                {"f16c", f.f16c},
                                                {"avx512f", f.avx512f},
                                                {"avx512bw", f.avx512bw},
                                                {"avx512vl", f.avx512vl},
                                                {"avx512_vnni", f.avx512vnni},
                                                {"avx512_bf16", f.avx512bf16}};
  for (const auto& [name, has] : named) {
    if (has) features += std::string(features.empty() ? "" : " ") + name;
  }
  const cpu::Isa isa = cpu::IsaByName(WithKernelEnv({}).isa).value_or(cpu::BestIsa());
  const std::string detail = CpuModelName() + "; " + (features.empty() ? "no SIMD" : features) +
                             "; kernel target " + cpu::IsaName(isa);
  if (isa == cpu::Isa::kScalar) {
    report.Add("cpu", Verdict::kWarn, detail + " (no AVX2/FMA/F16C: the slow scalar kernels run)");
  } else {
    report.Add("cpu", Verdict::kOk, detail);
  }
}

// Returns the thread count the later checks use.
int CheckThreads(Report& report, int asked) {
  const auto [logical, physical] = LogicalAndPhysicalCpus();
  std::string detail = std::to_string(physical) + " physical cores, " + std::to_string(logical) +
                       " logical CPUs available: recommended -t " + std::to_string(physical);
  if (asked > logical) {
    report.Add("threads", Verdict::kWarn,
               detail + "; -t " + std::to_string(asked) + " oversubscribes the CPUs");
  } else {
    report.Add("threads", Verdict::kOk, detail);
  }
  return asked > 0 ? asked : physical;
}

// Returns the bandwidth in GB/s (0 when it could not be measured).
double CheckBandwidth(Report& report, ThreadPool& pool) {
  const ReadBandwidthOptions options;
  Result<double> bw = MeasureReadBandwidth(pool, options);
  if (!bw.ok()) {
    report.Add("memory-bandwidth", Verdict::kFail, bw.status().message());
    return 0;
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "%.1f GB/s read (%d threads, %zu MiB buffer); %s of %s available",
                *bw, pool.size(), options.buffer_bytes >> 20,
                Mib(static_cast<double>(MemInfoBytes("MemAvailable"))).c_str(),
                Mib(static_cast<double>(MemInfoBytes("MemTotal"))).c_str());
  report.Add("memory-bandwidth", Verdict::kOk, buf);
  return *bw;
}

// The round trip of a cache line between two threads: on cores that share a last-level cache
// ~100 ns or less; across dies or sockets several times that, which every hand-off between the
// threads of a batched decode step pays (a virtual machine's host may move its vCPUs between the
// two). Informational: only a failed measurement fails.
void CheckCoreLatency(Report& report, int threads) {
  if (threads < 2) {
    report.Add("core-latency", Verdict::kOk, "one thread: no hand-offs between cores");
    return;
  }
  Result<double> ns = MeasureCoreRoundTripNs();
  if (!ns.ok()) {
    report.Add("core-latency", Verdict::kFail, ns.status().message());
    return;
  }
  constexpr double kSharedCacheNs = 250;
  char buf[200];
  std::snprintf(
      buf, sizeof buf, "%.0f ns round trip of a cache line between two threads (%s)", *ns,
      *ns <= kSharedCacheNs
          ? "cores that share a last-level cache"
          : "cores without a shared last-level cache: batched decoding pays per hand-off");
  report.Add("core-latency", Verdict::kOk, buf);
}

void CheckKernels(Report& report, ThreadPool& pool) {
  for (const cpu::SelfCheckResult& r : cpu::RunKernelSelfCheck(pool)) {
    report.Add(r.name, r.ok ? Verdict::kOk : Verdict::kFail, r.detail);
  }
}

void CheckModelMemory(Report& report, const engine::ModelRunner& eng) {
  constexpr int64_t kBlock = 16;  // the engine's default KV block
  const double weights = static_cast<double>(eng.model().weight_bytes());
  const double kv = static_cast<double>(engine::PagedKvStore::BytesPerBlock(eng.config(), kBlock)) *
                    static_cast<double>((eng.n_ctx() + kBlock - 1) / kBlock);
  const double total = weights + kv;
  const double available = static_cast<double>(MemInfoBytes("MemAvailable"));
  const double physical = static_cast<double>(MemInfoBytes("MemTotal"));
  const std::string detail = "weights " + Mib(weights) + " + KV cache of one " +
                             std::to_string(eng.n_ctx()) + "-token context " + Mib(kv) + " = " +
                             Mib(total) + " (" + Mib(available) + " available)";
  if (physical > 0 && total > physical) {
    report.Add("model-memory", Verdict::kFail, detail + ": more than this machine's memory");
  } else if (available > 0 && total > available) {
    report.Add("model-memory", Verdict::kWarn, detail + ": more than is free now");
  } else {
    report.Add("model-memory", Verdict::kOk, detail);
  }
}

// A short decode after a short prompt: tokens/s, and whether the logits are finite.
Result<double> MeasureDecode(engine::ModelRunner& eng, int64_t n_prompt, int64_t n_gen) {
  std::vector<int32_t> ids =
      eng.tokenizer().Encode("The quick brown fox jumps over the lazy dog. ", true, false);
  while (static_cast<int64_t>(ids.size()) <= n_prompt + n_gen) ids.push_back(ids.back());
  GANNET_ASSIGN_OR_RETURN(std::span<const float> logits,
                          eng.Evaluate(std::span(ids).first(n_prompt), 0, false));
  // The first decode step compiles its plan and faults the weights in: a warm-up, not timed.
  const int32_t first[1] = {ids[n_prompt]};
  GANNET_RETURN_IF_ERROR(eng.Evaluate(first, n_prompt, false).status());
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 1; i <= n_gen; ++i) {
    const int32_t one[1] = {ids[n_prompt + i]};
    GANNET_ASSIGN_OR_RETURN(logits, eng.Evaluate(one, n_prompt + i, false));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (float x : logits) {
    if (!std::isfinite(x)) return Status::Internal("the forward pass gave non-finite logits");
  }
  return static_cast<double>(n_gen) / s;
}

void CheckModelSpeed(Report& report, engine::ModelRunner& eng, double bandwidth_gbps) {
  constexpr int64_t kPrompt = 16, kGen = 16;
  Result<double> measured = MeasureDecode(eng, kPrompt, kGen);
  if (!measured.ok()) {
    report.Add("model-speed", Verdict::kFail, measured.status().message());
    return;
  }
  const double bytes = BytesPerGeneratedToken(eng, kPrompt + 1, kGen).total();
  const double estimate = bandwidth_gbps * 1e9 / bytes;
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "estimate %.1f tokens/s (%.1f GB/s / %.1f MB read per token); measured %.1f "
                "tokens/s decoding %lld tokens (%.0f%% of the estimate, -t %d)",
                estimate, bandwidth_gbps, bytes / 1e6, *measured, static_cast<long long>(kGen),
                estimate > 0 ? 100 * *measured / estimate : 0.0, eng.n_threads());
  // Below a fifth of the roofline something else is the bound: oversubscribed or slow cores.
  report.Add("model-speed",
             estimate > 0 && *measured < 0.2 * estimate ? Verdict::kWarn : Verdict::kOk, buf);
}

void CheckModel(Report& report, const std::string& path, int threads, double bandwidth_gbps) {
  const auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<engine::ModelRunner>> loaded =
      engine::ModelRunner::Load(path, WithKernelEnv({.n_threads = threads}));
  if (!loaded.ok()) {
    report.Add("model-load", Verdict::kFail, loaded.status().message());
    return;
  }
  engine::ModelRunner& eng = **loaded;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s (%s, %lld layers, vocabulary %lld) loaded in %.2f s",
                path.c_str(), eng.config().name.c_str(),
                static_cast<long long>(eng.config().n_layer),
                static_cast<long long>(eng.config().n_vocab), s);
  report.Add("model-load", Verdict::kOk, buf);
  CheckModelMemory(report, eng);
  CheckModelSpeed(report, eng, bandwidth_gbps);
}

}  // namespace

Runner AddDoctorCommand(CLI::App& app) {
  struct Opts {
    std::string model;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "doctor",
      "Check this machine (and a model file) before serving: CPU, threads, memory "
      "bandwidth, core-to-core latency, kernel conformance, model load, memory and speed");
  sub->add_option("-m,--model", o->model, "Also check this GGUF model file");
  sub->add_option("-t,--threads", o->threads, "Threads to check with (default: physical cores)");
  sub->footer(
      "Exit status 1 when a check fails. For testing the failure path, "
      "GANNET_DOCTOR_FAIL=NAME[,...] "
      "makes the named checks fail (a name without '/' names its whole family, e.g. matmul).");
  return [o] {
    if (o->threads < 0) return ReportError("doctor needs -t >= 0");
    Report report(std::getenv("GANNET_DOCTOR_FAIL"));
    CheckCpu(report);
    const int threads = CheckThreads(report, o->threads);
    double bandwidth = 0;
    {
      ThreadPool pool(threads);
      bandwidth = CheckBandwidth(report, pool);
      CheckCoreLatency(report, threads);
      CheckKernels(report, pool);
    }
    if (!o->model.empty()) {
      std::string model = o->model;
      if (Status s = ResolveModelFlag(&model); !s.ok()) {
        report.Add("model-load", Verdict::kFail, s.message());
      } else {
        CheckModel(report, model, threads, bandwidth);
      }
    }
    report.PrintSummary();
    return report.failed() ? 1 : 0;
  };
}

}  // namespace gannet::cli
