// gannet perplexity: llama-perplexity's measurement, so its figures can be compared.
//
// The text is tokenized once (BOS/EOS as the model's metadata asks) and cut into consecutive
// windows of -c tokens; the last incomplete window is dropped. Each window runs from an empty
// cache with its first token replaced by BOS when the model adds one, and only its second half
// is scored: the logits at positions [c/2, c-1) predict tokens c/2+1 .. c-1, so every scored
// token sees at least c/2 tokens of context. PPL = exp(mean negative log-likelihood) over every
// scored token, with llama-perplexity's first-order error.
//
// --kl-divergence-base OUT writes the scored positions' distributions (kld_file.h: top-k
// log-probabilities and the rest's mass, with the windows' tokens); --kl-divergence IN evaluates
// the windows stored there and compares token by token (perplexity_stats.h).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/kld_file.h"
#include "cli/perplexity_stats.h"
#include "engine/model_runner.h"

namespace gannet::cli {
namespace {

struct PerplexityOpts {
  std::string model, text_file, base_out, base_in;
  int64_t ctx = 0;  // 0: 512, or the base file's
  int64_t batch = 512;
  int threads = 0;
  int64_t chunks = -1;  // -1: every whole window
  int32_t top_k = kKldDefaultTopK;
  bool quiet = false;
};

// Logits rows a scoring pass may hold (about 256 MiB of f32 at Gemma 3's 262k vocabulary).
constexpr int64_t kMaxLogitFloats = int64_t{64} << 20;

// Evaluation texts: at most 1 GiB (the token windows of a longer one would not fit a run anyway).
constexpr size_t kMaxTextFile = size_t{1} << 30;

// The windows: n_chunks * ctx tokens, each window's first token BOS where the model adds one.
Result<std::vector<int32_t>> TextWindows(const PerplexityOpts& o, const Tokenizer& tok, int64_t ctx,
                                         int64_t want_chunks) {
  GANNET_ASSIGN_OR_RETURN(const std::string text,
                          ReadTextFile(o.text_file, "text file", kMaxTextFile));
  const std::vector<int32_t> ids = tok.Encode(text, /*add_special=*/true, false);
  const int64_t available = static_cast<int64_t>(ids.size()) / ctx;
  if (available < 1)
    return Status::InvalidArgument(o.text_file + " has " + std::to_string(ids.size()) +
                                   " tokens, fewer than one window of -c " + std::to_string(ctx));
  if (want_chunks > available)
    return Status::InvalidArgument(o.text_file + " has " + std::to_string(ids.size()) +
                                   " tokens: " + std::to_string(available) + " windows of " +
                                   std::to_string(ctx) + ", not the " +
                                   std::to_string(want_chunks) + " asked for");
  const int64_t n_chunks = want_chunks > 0 ? want_chunks : available;
  std::vector<int32_t> windows(ids.begin(), ids.begin() + n_chunks * ctx);
  if (tok.add_bos() && tok.bos() >= 0) {
    for (int64_t c = 0; c < n_chunks; ++c) windows[c * ctx] = tok.bos();
  }
  return windows;
}

// The first position where the text's windows and the base file's differ, as an error.
Status CheckSameTokens(std::span<const int32_t> text, std::span<const int32_t> base, int64_t ctx) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != base[i])
      return Status::InvalidArgument(
          "the text's tokens differ from the base file's at window " + std::to_string(i / ctx + 1) +
          ", position " + std::to_string(i % ctx) + " (token " + std::to_string(text[i]) + " vs " +
          std::to_string(base[i]) + "): another text, or a different tokenizer");
  }
  return Status::Ok();
}

// A one-line bar on stderr, redrawn in place at most every 100 ms.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void Clear() {
    if (enabled_) std::fputs("\r\033[K", stderr);
  }
  void Draw(int64_t done, int64_t total, double seconds) {
    if (!enabled_) return;
    constexpr int kWidth = 30;
    const double frac = total > 0 ? static_cast<double>(done) / total : 1.0;
    std::string bar(static_cast<size_t>(frac * kWidth), '#');
    bar.resize(kWidth, '.');
    const double eta = done > 0 ? seconds / done * (total - done) : 0;
    std::fprintf(stderr, "\r\033[K[%s] %lld/%lld windows, %.1f s, ETA %.0f s", bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), seconds, eta);
    std::fflush(stderr);
  }

 private:
  bool enabled_;
};

// Everything one run of the command holds.
class PerplexityRun {
 public:
  PerplexityRun(const PerplexityOpts& o, engine::ModelRunner& eng, std::vector<int32_t> windows,
                int64_t ctx)
      : o_(o),
        eng_(eng),
        windows_(std::move(windows)),
        ctx_(ctx),
        n_chunks_(static_cast<int64_t>(windows_.size()) / ctx) {}

  Status Run(std::optional<KldReader>* base, std::optional<KldWriter>* out);

 private:
  Status ScoreWindow(int64_t chunk);
  Status ScoreRows(std::span<const float> logits, int64_t first_pos, int64_t n_rows,
                   std::span<const int32_t> window);

  const PerplexityOpts& o_;
  engine::ModelRunner& eng_;
  std::vector<int32_t> windows_;
  int64_t ctx_, n_chunks_;
  KldReader* base_ = nullptr;
  KldWriter* out_ = nullptr;
  MeanAccumulator nll_;
  KldSummary kld_;
  std::vector<KldRecord> records_;  // per row of a pass (base read, or to write)
  std::vector<RowScore> scores_;
  std::vector<KldPosition> compared_;
};

Status PerplexityRun::ScoreRows(std::span<const float> logits, int64_t first_pos, int64_t n_rows,
                                std::span<const int32_t> window) {
  const size_t n_vocab = static_cast<size_t>(eng_.config().n_vocab);
  records_.resize(n_rows);
  scores_.resize(n_rows);
  compared_.resize(n_rows);
  if (base_ != nullptr) {
    for (KldRecord& r : records_) GANNET_RETURN_IF_ERROR(base_->Read(&r));
  }
  eng_.pool().ParallelFor(n_rows, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const std::span<const float> row = logits.subspan(i * n_vocab, n_vocab);
      const int32_t target = window[first_pos + i + 1];
      if (base_ != nullptr) {
        compared_[i] = CompareWithBase(row, target, records_[i]);
        scores_[i].nll = compared_[i].nll_this;
      } else {
        scores_[i] = ScoreRow(row, target);
        if (out_ != nullptr) records_[i] = MakeKldRecord(row, target, o_.top_k);
      }
    }
  });
  for (int64_t i = 0; i < n_rows; ++i) {  // in order: the sums do not depend on the threads
    nll_.Add(scores_[i].nll);
    if (base_ != nullptr) kld_.Add(compared_[i]);
    if (out_ != nullptr) GANNET_RETURN_IF_ERROR(out_->Write(records_[i]));
  }
  return Status::Ok();
}

Status PerplexityRun::ScoreWindow(int64_t chunk) {
  const std::span<const int32_t> window(windows_.data() + chunk * ctx_, ctx_);
  const int64_t first = ctx_ / 2;
  // The unscored half as context (only its last row of logits comes back, unused).
  GANNET_RETURN_IF_ERROR(eng_.Evaluate(window.first(first), 0, false).status());
  const int64_t n_vocab = eng_.config().n_vocab;
  const int64_t step = std::max<int64_t>(1, std::min(o_.batch, kMaxLogitFloats / n_vocab));
  for (int64_t pos = first; pos < ctx_ - 1; pos += step) {
    const int64_t n = std::min(step, ctx_ - 1 - pos);
    GANNET_ASSIGN_OR_RETURN(std::span<const float> logits,
                            eng_.Evaluate(window.subspan(pos, n), pos, true));
    GANNET_RETURN_IF_ERROR(ScoreRows(logits, pos, n, window));
  }
  return Status::Ok();
}

Status PerplexityRun::Run(std::optional<KldReader>* base, std::optional<KldWriter>* out) {
  base_ = base->has_value() ? &**base : nullptr;
  out_ = out->has_value() ? &**out : nullptr;
  std::printf(
      "perplexity: %lld windows of %lld tokens, scoring the last %lld of each (%lld "
      "tokens), %d threads\n",
      static_cast<long long>(n_chunks_), static_cast<long long>(ctx_),
      static_cast<long long>(ctx_ - 1 - ctx_ / 2),
      static_cast<long long>(n_chunks_ * (ctx_ - 1 - ctx_ / 2)), eng_.n_threads());
  std::fflush(stdout);
  ProgressBar bar(!o_.quiet && isatty(STDERR_FILENO));
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  bar.Draw(0, n_chunks_, 0);
  for (int64_t c = 0; c < n_chunks_; ++c) {
    if (Status s = ScoreWindow(c); !s.ok()) {
      bar.Clear();
      return s;
    }
    bar.Clear();
    std::printf("[%lld]%.4f\n", static_cast<long long>(c + 1), PerplexityOf(nll_).ppl);
    std::fflush(stdout);
    bar.Draw(c + 1, n_chunks_, elapsed());
  }
  bar.Clear();
  const double seconds = elapsed();
  const Perplexity p = PerplexityOf(nll_);
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", p.ppl, p.error);
  std::printf("%lld tokens evaluated in %.1f s (%.1f tokens/s)\n",
              static_cast<long long>(windows_.size() - n_chunks_), seconds,
              static_cast<double>(windows_.size() - n_chunks_) / seconds);
  if (base_ != nullptr) kld_.Print(stdout);
  if (out_ != nullptr) GANNET_RETURN_IF_ERROR(out_->Close());
  return Status::Ok();
}

Status CheckOpts(const PerplexityOpts& o) {
  if (o.text_file.empty() && o.base_in.empty())
    return Status::InvalidArgument("perplexity needs -f TEXT (or --kl-divergence IN)");
  if (o.ctx != 0 && (o.ctx < 4 || o.ctx > (int64_t{1} << 20)))
    return Status::InvalidArgument("-c must be at least 4");
  if (o.batch < 1 || o.threads < 0 || o.chunks == 0 || o.chunks < -1)
    return Status::InvalidArgument("perplexity needs -b >= 1, -t >= 0 and --chunks >= 1");
  if (o.top_k < 1 || o.top_k > kKldMaxTopK)
    return Status::InvalidArgument("--kl-divergence-top-k must be in 1.." +
                                   std::to_string(kKldMaxTopK));
  return Status::Ok();
}

// The base file (if any) and the context it fixes.
Result<std::optional<KldReader>> OpenBase(const PerplexityOpts& o, int64_t* ctx) {
  if (o.base_in.empty()) {
    *ctx = o.ctx != 0 ? o.ctx : 512;
    return std::optional<KldReader>();
  }
  GANNET_ASSIGN_OR_RETURN(KldReader r, KldReader::Open(o.base_in));
  if (o.ctx != 0 && o.ctx != r.header().n_ctx)
    return Status::InvalidArgument(o.base_in + " was made with -c " +
                                   std::to_string(r.header().n_ctx) + ", not -c " +
                                   std::to_string(o.ctx));
  if (o.chunks > r.header().n_chunks)
    return Status::InvalidArgument(o.base_in + " holds " + std::to_string(r.header().n_chunks) +
                                   " windows, fewer than --chunks " + std::to_string(o.chunks));
  *ctx = r.header().n_ctx;
  return std::optional<KldReader>(std::move(r));
}

// The windows to evaluate: from the text, checked against the base file's when there is one.
Result<std::vector<int32_t>> Windows(const PerplexityOpts& o, const engine::ModelRunner& eng,
                                     const KldReader* base, int64_t ctx) {
  if (base != nullptr && base->header().n_vocab != eng.config().n_vocab)
    return Status::InvalidArgument(o.base_in + " was made with a model of vocabulary " +
                                   std::to_string(base->header().n_vocab) + ", this model's is " +
                                   std::to_string(eng.config().n_vocab) +
                                   ": the base must come from the same model family");
  int64_t chunks = o.chunks;
  if (base != nullptr && chunks < 0) chunks = base->header().n_chunks;
  std::vector<int32_t> windows;
  if (!o.text_file.empty()) {
    GANNET_ASSIGN_OR_RETURN(windows, TextWindows(o, eng.tokenizer(), ctx, chunks));
  } else {
    windows.assign(base->header().tokens.begin(), base->header().tokens.begin() + chunks * ctx);
  }
  if (base != nullptr) GANNET_RETURN_IF_ERROR(CheckSameTokens(windows, base->header().tokens, ctx));
  return windows;
}

Status RunPerplexity(PerplexityOpts o) {
  GANNET_RETURN_IF_ERROR(ResolveModelFlag(&o.model));
  GANNET_RETURN_IF_ERROR(CheckOpts(o));
  int64_t ctx = 0;
  GANNET_ASSIGN_OR_RETURN(std::optional<KldReader> base, OpenBase(o, &ctx));
  GANNET_ASSIGN_OR_RETURN(
      std::unique_ptr<engine::ModelRunner> eng,
      engine::ModelRunner::Load(
          o.model, WithKernelEnv(
                       {.n_threads = o.threads, .n_ctx = ctx, .n_batch = std::min(o.batch, ctx)})));
  GANNET_ASSIGN_OR_RETURN(std::vector<int32_t> windows,
                          Windows(o, *eng, base ? &*base : nullptr, ctx));
  std::optional<KldWriter> out;
  if (!o.base_out.empty()) {
    KldHeader h{.top_k = std::min<int32_t>(o.top_k, static_cast<int32_t>(eng->config().n_vocab)),
                .n_vocab = eng->config().n_vocab,
                .n_ctx = ctx,
                .n_chunks = static_cast<int64_t>(windows.size()) / ctx,
                .tokens = windows};
    GANNET_ASSIGN_OR_RETURN(KldWriter w, KldWriter::Create(o.base_out, h));
    out.emplace(std::move(w));
  }
  PerplexityRun run(o, *eng, std::move(windows), ctx);
  return run.Run(&base, &out);
}

}  // namespace

Runner AddPerplexityCommand(CLI::App& app) {
  auto o = std::make_shared<PerplexityOpts>();
  CLI::App* sub = app.add_subcommand(
      "perplexity", "Perplexity of a model over a text, and KL divergence against a base model");
  sub->add_option("-m,--model", o->model, "GGUF model file")->required();
  sub->add_option("-f,--file", o->text_file, "Text file to evaluate");
  sub->add_option("-c,--ctx-size", o->ctx, "Window length in tokens (default 512, or the base's)");
  sub->add_option("-b,--batch-size", o->batch, "Most tokens per forward pass")
      ->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "Threads (default: one per core)");
  sub->add_option("--chunks", o->chunks, "Evaluate only the first N windows");
  auto* base_out = sub->add_option("--kl-divergence-base", o->base_out,
                                   "Save the scored positions' distributions to this file");
  auto* base_in = sub->add_option("--kl-divergence", o->base_in,
                                  "Compare with a file made by --kl-divergence-base");
  base_out->excludes(base_in);
  sub->add_option("--kl-divergence-top-k", o->top_k,
                  "Tokens per position kept by --kl-divergence-base")
      ->capture_default_str();
  sub->add_flag("-q,--quiet", o->quiet, "No progress bar");
  return [o] {
    if (Status s = RunPerplexity(*o); !s.ok()) return ReportError(s);
    return 0;
  };
}

}  // namespace gannet::cli
