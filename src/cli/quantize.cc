// gannet quantize IN.gguf OUT.gguf TYPE: llama-quantize's job (models/quantize.h). A progress bar
// goes to stderr when stderr is a terminal; the summary (sizes, time, tensor types) to stdout.
#include "models/quantize.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <tuple>

#include "cli/commands.h"

namespace gannet::cli {
namespace {

std::string TypesFooter() {
  std::string s = "Types (llama-quantize's names; general.file_type in brackets):\n";
  for (const models::QuantizeTarget& t : models::QuantizeTargets()) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-7s [%2d]  %.*s\n", std::string(t.name).c_str(),
                  t.file_type, static_cast<int>(t.description.size()), t.description.data());
    s += line;
  }
  s += "\nThe _S/_M mixes follow llama.cpp's per-tensor rules; every type but F16/BF16/F32 also "
       "stores\n"
       "output.weight (or a tied token_embd.weight) as Q6_K. Norms and other 1-D tensors stay as "
       "they are.\n"
       "Rows whose length does not fit a type fall back: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, "
       "else F16.";
  return s;
}

std::string Megabytes(uint64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return b;
}

// A one-line bar redrawn in place, at most every 100 ms.
class ProgressBar {
 public:
  void Update(const models::QuantizeProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = p.elements_done == p.elements_total;
    if (!last && now - drawn_ < std::chrono::milliseconds(100)) return;
    drawn_ = now;
    const double frac =
        p.elements_total > 0 ? static_cast<double>(p.elements_done) / p.elements_total : 1.0;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r\033[K[%s] %3.0f%%  %zu/%zu %s -> %s", bar.c_str(), 100 * frac,
                 p.tensor_index + 1, p.n_tensors, std::string(p.name).c_str(),
                 std::string(DTypeName(p.to)).c_str());
    if (last) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point drawn_{};
};

}  // namespace

Runner AddQuantizeCommand(CLI::App& app) {
  struct Opts {
    std::string input, output, type, output_type, embd_type;
    int threads = 0;
    bool pure = false, verbose = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "quantize", "Quantize a GGUF model (F32/F16/BF16 weights) like llama-quantize");
  sub->add_option("input", o->input, "Input GGUF model with F32, F16 or BF16 weights")->required();
  sub->add_option("output", o->output, "Output GGUF file")->required();
  sub->add_option("type", o->type, "Target type or mix, e.g. Q4_K_M (listed below)")->required();
  sub->add_option("-t,--threads", o->threads, "Threads (default: one per core)");
  sub->add_flag("--pure", o->pure,
                "No per-tensor mix rules: every weight matrix gets the base type");
  sub->add_option("--output-tensor-type", o->output_type, "Type for output.weight (e.g. q8_0)");
  sub->add_option("--token-embedding-type", o->embd_type, "Type for token_embd.weight (e.g. q8_0)");
  sub->add_flag("-v,--verbose", o->verbose, "Print every tensor's shape and types");
  sub->add_flag("-q,--quiet", o->quiet, "No progress bar");
  sub->footer(TypesFooter());
  return [o] {
    if (o->threads < 0) return ReportError("quantize needs -t >= 0");
    Result<models::QuantizeTarget> target = models::FindQuantizeTarget(o->type);
    if (!target.ok()) return ReportError(target.status());
    models::QuantizeOptions opts{.target = *target, .pure = o->pure, .n_threads = o->threads};
    for (auto [flag, text, dst] :
         {std::tuple{"--output-tensor-type", &o->output_type, &opts.output_type},
          std::tuple{"--token-embedding-type", &o->embd_type, &opts.token_embedding_type}}) {
      if (text->empty()) continue;
      std::optional<DType> t = DTypeFromName(*text);
      if (!t) return ReportError(std::string(flag) + ": unknown type '" + *text + "'");
      *dst = *t;
    }
    ProgressBar bar;
    if (!o->quiet && isatty(STDERR_FILENO)) {
      opts.progress = [&bar](const models::QuantizeProgress& p) { bar.Update(p); };
    }

    const auto start = std::chrono::steady_clock::now();
    Result<models::QuantizeReport> r = models::QuantizeModel(o->input, o->output, opts);
    if (!r.ok()) {
      if (opts.progress) std::fputc('\n', stderr);
      return ReportError(r.status());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::map<std::string, int> counts;
    for (const models::TensorPlan& t : r->tensors) {
      ++counts[std::string(DTypeName(t.to))];
      if (o->verbose) {
        std::string shape;
        for (int64_t d : t.shape) shape += (shape.empty() ? "" : " x ") + std::to_string(d);
        std::printf("%-36s [%s] %s -> %s%s%s\n", t.name.c_str(), shape.c_str(),
                    std::string(DTypeName(t.from)).c_str(), std::string(DTypeName(t.to)).c_str(),
                    t.convert ? "" : " (copied)",
                    t.fallback.empty() ? "" : ("  fallback: " + t.fallback).c_str());
      }
    }
    std::string types;
    for (const auto& [name, n] : counts)
      types += (types.empty() ? "" : ", ") + std::to_string(n) + " " + name;
    std::printf("quantized %s (%s) -> %s (%s, %s) in %.1f s\n", o->input.c_str(),
                Megabytes(r->input_bytes).c_str(), o->output.c_str(),
                Megabytes(r->output_bytes).c_str(), std::string(target->name).c_str(), seconds);
    std::printf("%zu tensors: %s; %d fallback%s\n", r->tensors.size(), types.c_str(), r->n_fallback,
                r->n_fallback == 1 ? "" : "s");
    return 0;
  };
}

}  // namespace gannet::cli
